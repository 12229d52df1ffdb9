import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")

app = Celery("moderation_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def indexes_warm_up(**kwargs) -> None:
    # In each process that runs tasks (prefork children, or the solo worker itself), not in
    # the prefork parent: a thread there would not survive the fork.
    from samples import warmup

    warmup.indexes_warm_up_in_background()
