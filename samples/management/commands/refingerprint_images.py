from django.core.management.base import BaseCommand

from samples import matching, refingerprint


class Command(BaseCommand):
    help = (
        "Recompute the fingerprints of images (results and samples) stored before thumbnails "
        "or cropped forms were kept, so that near copies are confirmed by their thumbnails and "
        "cropped, bordered or captioned copies are found. Safe to rerun or interrupt."
    )

    def handle(self, *args, **options):
        for store in (matching.RESULTS, matching.samples_store()):
            count = refingerprint.stale_images_refingerprint(store)
            self.stdout.write(f"{store.name}: {count} images refingerprinted.")
