from celery import shared_task

from green import callbacks, services


@shared_task(ignore_result=True)
def seen_requests_purge() -> int:
    return services.seen_requests_purge()


@shared_task(ignore_result=True)
def task_callbacks_purge() -> int:
    return callbacks.task_callbacks_purge()
