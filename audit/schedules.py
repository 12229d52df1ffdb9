"""The periodic jobs, kept in the database (django-celery-beat) so admins can see when each
last ran and change its schedule in the Django admin; beat reads them from there.

settings.PERIODIC_TASKS holds the defaults: each job is created once, when missing, and never
overwritten afterwards (an admin's change survives deploys and migrations)."""

from django.conf import settings


def schedules_ensure() -> list[str]:
    """Create the periodic tasks that don't exist yet; returns the names created."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    created = []
    for name, job in settings.PERIODIC_TASKS.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=int(job["schedule"].total_seconds()), period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.create(
            name=name, task=job["task"], interval=interval, description=job.get("description", "")
        )
        created.append(name)
    return created


def schedules_ensure_after_migrate(sender, using="default", **kwargs) -> None:
    # After django_celery_beat's own migrations (and again after a test database flush).
    # post_migrate comes for every app even when a partial `migrate` left its tables out.
    from django.db import connections
    from django_celery_beat.models import PeriodicTask

    if sender.label != "django_celery_beat":
        return
    if PeriodicTask._meta.db_table in connections[using].introspection.table_names():
        schedules_ensure()
