from celery import shared_task
from django.db import OperationalError

from audit import callbacks, services


@shared_task(acks_late=True, ignore_result=True)
def results_arrived(fetch_ids: list[int], hash_ids: list[int]) -> None:
    # One message per ingest request, fanned out here so the request publishes once.
    for result_id in fetch_ids:
        result_fetch.delay(result_id)
    services.results_fingerprint(result_ids=hash_ids)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def result_fetch(self, result_id: int) -> None:
    try:
        services.result_fetch(result_id=result_id)
    except services.FetchRetry as error:
        if self.app.conf.task_always_eager:
            return  # in-process demo mode: the stale-fetch job tries again later
        raise self.retry(countdown=30 * 2**self.request.retries) from error


@shared_task(ignore_result=True)
def results_fetch_stale() -> None:
    for result_id in services.results_fetch_stale():
        result_fetch.delay(result_id)


@shared_task(ignore_result=True)
def results_purge() -> int:
    return services.results_purge().results_removed


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def decision_propagate(decision_id: int) -> None:
    services.decision_propagate(decision_id=decision_id)


@shared_task(ignore_result=True)
def decisions_propagate_pending() -> None:
    for decision_id in services.decisions_propagate_pending():
        decision_propagate.delay(decision_id)


@shared_task(acks_late=True, ignore_result=True)
def results_fingerprint(result_ids: list[int]) -> None:
    services.results_fingerprint(result_ids=result_ids)


@shared_task(acks_late=True, ignore_result=True)
def callbacks_send(delivery_ids: list[int]) -> None:
    # One message per committed change, fanned out here so the request publishes once.
    for delivery_id in delivery_ids:
        callback_send.delay(delivery_id)


@shared_task(acks_late=True, ignore_result=True)
def callback_send(delivery_id: int) -> None:
    # No Celery retry: a failed attempt is rescheduled in its row, and beat sends it when due.
    callbacks.callback_send(delivery_id=delivery_id)


@shared_task(ignore_result=True)
def callbacks_send_due() -> None:
    for delivery_id in callbacks.callbacks_send_due():
        callback_send.delay(delivery_id)


@shared_task(ignore_result=True)
def callbacks_purge() -> int:
    return callbacks.callbacks_purge()
