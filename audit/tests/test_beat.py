"""The retention purge runs from beat, as deployed: `celery beat` reading its jobs from the
database (django-celery-beat) and a `celery worker` running them, on a Redis of the test's own,
both real processes on the test database."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from audit.models import PurgeRun, PurgeStatus, Result
from audit.tests.factories import ResultFactory
from audit.tests.processes import wait_for


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_beat_runs_the_purge_on_a_worker(workers):
    expired = ResultFactory(expires_at=timezone.now() - timedelta(minutes=1))
    young = ResultFactory()
    # As an admin would in the admin: the purge every second, the other jobs paused.
    every_second, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.filter(name="results-purge").update(interval=every_second)
    PeriodicTask.objects.exclude(name="results-purge").update(enabled=False)

    workers.start("worker", "celery", "-A", "moderation_console", "worker")
    workers.start_beat()

    finished = PurgeRun.objects.filter(status=PurgeStatus.DONE, results_removed__gte=1)
    assert wait_for(finished.exists, timeout=60), workers.log("beat") + workers.log("worker")
    assert not Result.objects.filter(id=expired.id).exists()
    assert Result.objects.filter(id=young.id).exists()
    assert PeriodicTask.objects.get(name="results-purge").last_run_at is not None
    # Beat keeps firing every second; later runs find nothing more to remove.
    assert wait_for(lambda: PurgeRun.objects.count() >= 2, timeout=30), workers.log("beat")
    assert Result.objects.filter(id=young.id).exists()
