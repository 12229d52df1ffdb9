from celery import shared_task

from green import services


@shared_task(ignore_result=True)
def seen_requests_purge() -> int:
    return services.seen_requests_purge()
