from django.core.management.base import BaseCommand

from audit import services


class Command(BaseCommand):
    help = "Fingerprint the results that have none yet (for propagation to find them)."

    def handle(self, *args, **options):
        count = services.results_fingerprint_missing()
        self.stdout.write(f"Fingerprinted {count} results.")
