from django.core.management.base import BaseCommand

from audit import services


class Command(BaseCommand):
    help = "Remove expired results now (what the results-purge beat job runs)."

    def handle(self, *args, **options):
        run = services.results_purge()
        days = ", ".join(run.partitions_dropped) or "none"
        self.stdout.write(
            f"{run.status}: {run.results_removed} results removed (days dropped: {days}; "
            f"{run.rows_deleted} deleted row by row), {run.files_removed} files, "
            f"{run.stubs_removed} stubs, {run.partitions_created} partitions created."
        )
