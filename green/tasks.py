from celery import shared_task

from green import callbacks, services


@shared_task(ignore_result=True)
def seen_requests_purge() -> int:
    return services.seen_requests_purge()


@shared_task(ignore_result=True)
def task_callbacks_purge() -> int:
    # The async image scans are forgotten on the same schedule as their callbacks.
    services.image_scans_purge()
    return callbacks.task_callbacks_purge()


@shared_task(ignore_result=True)
def image_scans_resend_pending() -> int:
    return len(services.image_scans_resend_pending())


@shared_task(acks_late=True, ignore_result=True)
def image_scans_run(scan_ids: list[int]) -> None:
    # One message per request, fanned out here so the request publishes once.
    for scan_id in scan_ids:
        image_scan_run.delay(scan_id)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def image_scan_run(self, scan_id: int) -> None:
    try:
        services.image_scan_run(scan_id=scan_id)
    except services.ImageScanRetry as error:
        if self.app.conf.task_always_eager:
            return  # in-process mode: a later poll of the stale scan sends it again
        raise self.retry(countdown=30 * 2**self.request.retries) from error
