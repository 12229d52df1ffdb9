"""Callbacks: POST every result a decision (or its propagation) changed to the client's URL.

The deliveries table is the outbox: its rows are written in the transaction that changed the
results, so a change is never saved without its callbacks and a rollback leaves none. A task
sends each row after the commit; beat sends whatever is due (a message the broker lost, a
retry after its backoff), so nothing depends on the broker keeping a message.

Delivery is at least once: receivers dedupe by deliveryId (the X-Delivery-Id header).
"""

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.fields import DateTimeField

from audit import fetch, tasks
from audit.models import CallbackDelivery, CallbackForm, Decision, DeliveryStatus, Result
from audit.serializers import ResultSerializer
from green import callbacks as alibaba_callbacks
from moderation_console import crypto
from policies import selectors as policy_selectors

logger = logging.getLogger(__name__)

USER_AGENT = "ModerationConsole/1 (+callback)"
# After failed attempt n the next one is due FIRST_RETRY_DELAY * 4**(n-1) later, at most
# MAX_RETRY_DELAY: 1 min, 4 min, 16 min, ~1 h, ~4 h, 8 h, 8 h; with the default 8 attempts the
# last one is about 22 hours after the first.
FIRST_RETRY_DELAY = timedelta(minutes=1)
RETRY_DELAY_FACTOR = 4
MAX_RETRY_DELAY = timedelta(hours=8)
# A send holds its row this long past the request timeout, so beat does not send it again
# meanwhile; if the worker dies mid-send, the row is due again once the lease is over.
SEND_LEASE_MARGIN = timedelta(seconds=60)
MAX_RESPONSE_BYTES = 64 * 1024  # receivers answer with a status; the body is only logged
# Retrying cannot fix these: the address is refused by the SSRF rules, or the URL is invalid.
PERMANENT_ERRORS = frozenset({"blocked_address", "invalid_url"})
DUE_BATCH = 500


def callback_body(
    *, result: Result, event: str, decision_id: int, delivery_id: UUID, at: datetime
) -> str:
    """The result as GET /api/v1/results/{taskId} shows it, plus what this callback is."""
    data = dict(ResultSerializer(result).data)
    data |= {
        "event": event,
        "decisionId": decision_id,
        "deliveryId": str(delivery_id),
        "timestamp": DateTimeField().to_representation(at),
    }
    # ASCII only (ensure_ascii), so the text stored is exactly the bytes signed and sent.
    return json.dumps(data, separators=(",", ":"))


def callback_sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def callbacks_create(*, decision: Decision, result_ids: list[int], event: str) -> list[int]:
    """One pending delivery per changed result whose policy has a callback URL, and those of
    the Alibaba form (green.callbacks: async scans' callbacks, the AuditSetting's).

    Call it inside the transaction that changed the results, after the change: the body is
    the results' new state, and a rollback takes the deliveries with it.
    """
    console = _console_callbacks_create(decision=decision, result_ids=result_ids, event=event)
    alibaba = alibaba_callbacks.review_callbacks_create(
        decision=decision, result_ids=result_ids, event=event
    )
    return console + alibaba


def _console_callbacks_create(*, decision: Decision, result_ids: list[int], event: str):
    biz_types = (
        Result.objects.filter(id__in=result_ids)
        .order_by()
        .values_list("biz_type", flat=True)
        .distinct()
    )
    policies = {b: policy_selectors.policy_for(b) for b in biz_types}
    policies = {b: p for b, p in policies.items() if p.callback_url and p.pk is not None}
    if not policies:
        return []
    results = (
        Result.objects.filter(id__in=result_ids, biz_type__in=list(policies))
        .select_related("decided_by")
        .order_by("id")
    )
    now = timezone.now()
    return deliveries_queue(
        [_delivery(r, policies[r.biz_type], decision, event, now) for r in results]
    )


def deliveries_queue(deliveries: list[CallbackDelivery]) -> list[int]:
    """Write the deliveries (of either form) and send them once the caller's transaction
    commits; beat sends whatever that message does not."""
    if not deliveries:
        return []
    CallbackDelivery.objects.bulk_create(deliveries, batch_size=500)
    ids = [d.id for d in deliveries if d.id is not None]
    transaction.on_commit(lambda: tasks.callbacks_send.delay(ids), robust=True)
    return ids


def _delivery(result, policy, decision, event, now) -> CallbackDelivery:
    delivery = CallbackDelivery(
        result=result,
        task_id=result.task_id,
        decision=decision,
        policy=policy,
        event=event,
        url=policy.callback_url,
        next_attempt_at=now,
        created_at=now,
    )
    delivery.body = callback_body(
        result=result, event=event, decision_id=decision.id, delivery_id=delivery.uuid, at=now
    )
    return delivery


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    status_code: int | None = None
    error: str = ""
    permanent: bool = False


def callback_send(*, delivery_id: int) -> None:
    """Make one attempt at a delivery if it is pending and due. Safe to run twice: the
    conditional update lets one run claim it, and a delivered row is never due again."""
    now = timezone.now()
    lease = timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS) + SEND_LEASE_MARGIN
    claimed = CallbackDelivery.objects.filter(
        id=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + lease, attempts=F("attempts") + 1)
    if not claimed:
        return
    delivery = CallbackDelivery.objects.select_related("policy").get(id=delivery_id)
    attempt = _attempt(delivery)
    _attempt_record(delivery, attempt)
    logger.info(
        "callback %s to %s, attempt %s: %s",
        delivery.id,
        delivery.url,
        delivery.attempts,
        "delivered" if attempt.delivered else attempt.error,
    )


def _attempt(delivery: CallbackDelivery) -> Attempt:
    body = delivery.body.encode()
    headers = {"User-Agent": USER_AGENT, "X-Delivery-Id": str(delivery.uuid)}
    if delivery.form == CallbackForm.ALIBABA:
        # Its checksum is in the body already (seeded when the delivery was written).
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"
        return _post(delivery, body, headers)
    policy = delivery.policy
    if policy is None:
        return Attempt(False, error="the policy was deleted", permanent=True)
    if not policy.callback_url:
        return Attempt(False, error="callbacks were turned off in the policy", permanent=True)
    try:
        secret = policy.callback_secret
    except crypto.DecryptionError as error:
        return Attempt(False, error=str(error))  # an operator can restore the key: retry
    headers |= {"Content-Type": "application/json", "X-Signature": callback_sign(body, secret)}
    return _post(delivery, body, headers)


def _post(delivery: CallbackDelivery, body: bytes, headers: dict[str, str]) -> Attempt:
    try:
        posted = fetch.post_url(
            delivery.url,
            body=body,
            headers=headers,
            timeout=settings.CALLBACK_TIMEOUT_SECONDS,
            max_response_bytes=MAX_RESPONSE_BYTES,
            allowed_networks=settings.FETCH_ALLOWED_NETWORKS,
        )
    except fetch.FetchError as error:
        return Attempt(False, error=str(error), permanent=error.code in PERMANENT_ERRORS)
    if 200 <= posted.status < 300:
        return Attempt(True, status_code=posted.status)
    return Attempt(False, status_code=posted.status, error=_status_error(posted))


def _status_error(posted: fetch.Posted) -> str:
    error = f"receiver answered HTTP {posted.status}"
    if 300 <= posted.status < 400:
        error += " (redirects are not followed)"
    if excerpt := posted.content[:200].decode("utf-8", "replace").strip():
        error += f": {excerpt}"
    return error


def _attempt_record(delivery: CallbackDelivery, attempt: Attempt) -> None:
    now = timezone.now()
    fields = {"last_status_code": attempt.status_code, "last_error": attempt.error[:500]}
    if attempt.delivered:
        fields |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now, "next_attempt_at": None}
    elif attempt.permanent or delivery.attempts >= settings.CALLBACK_MAX_ATTEMPTS:
        fields |= {"status": DeliveryStatus.FAILED, "next_attempt_at": None}
    else:
        fields["next_attempt_at"] = now + callback_retry_delay(delivery.attempts)
    CallbackDelivery.objects.filter(id=delivery.id, status=DeliveryStatus.PENDING).update(**fields)


def callback_retry_delay(attempts: int) -> timedelta:
    """How long after failed attempt number `attempts` (1-based) the next one is due."""
    return min(FIRST_RETRY_DELAY * RETRY_DELAY_FACTOR ** (attempts - 1), MAX_RETRY_DELAY)


def callbacks_send_due(*, limit: int = DUE_BATCH) -> list[int]:
    """Pending deliveries whose time has come: first tries whose message was lost, retries."""
    return list(
        CallbackDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )


def callbacks_retry(*, delivery_ids: list[int]) -> list[int]:
    """Make pending or failed deliveries due now and send them; delivered ones stay as they
    are. A failed one gets one more attempt (its attempts are already used up)."""
    with transaction.atomic():
        retried = list(
            CallbackDelivery.objects.filter(id__in=delivery_ids)
            .exclude(status=DeliveryStatus.DELIVERED)
            .select_for_update()
            .values_list("id", flat=True)
        )
        CallbackDelivery.objects.filter(id__in=retried).update(
            status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
        )
        transaction.on_commit(lambda: tasks.callbacks_send.delay(retried), robust=True)
    return retried


def callbacks_purge(*, now: datetime | None = None) -> int:
    """Delete the log of deliveries finished more than CALLBACK_RETENTION_DAYS ago."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.CALLBACK_RETENTION_DAYS)
    deleted, _ = (
        CallbackDelivery.objects.filter(created_at__lt=cutoff)
        .exclude(status=DeliveryStatus.PENDING)
        .delete()
    )
    return deleted
