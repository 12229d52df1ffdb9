"""Callbacks in Alibaba Content Moderation's form, through audit's callback outbox.

Alibaba POSTs `application/x-www-form-urlencoded` with two fields (help.aliyun.com document
130313, "Configure callback notifications" of the Content Moderation API):

    checksum = hex(sha256(<account uid> + <seed> + <content>))
    content  = the result, a JSON object as text

- an async scan's result, to the `callback` its request gave, with that request's `seed`;
- a human review result (a decision, its propagation, feedback), as
  `{"scanResult": <the machine's task result>, "auditResult": {"suggestion", "labels"}}`, to
  that same `callback` and to the biz type's AuditSetting callback URL (with its seed).

The uid is settings.GREEN_CALLBACK_UID: the account id the clients' checks already use. Rows
are CallbackDelivery rows of the Alibaba form, written in the transaction that stored or
changed the result, and sent, retried and logged like every other (audit.callbacks).
"""

import hashlib
import json
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.utils import timezone

# audit.callbacks imports this module too: bound as a module, read when called.
from audit import callbacks as outbox
from audit.models import CallbackDelivery, CallbackEvent, CallbackForm, FetchStatus, Result
from green import answers
from green.models import AccessKey, AuditSetting, TaskCallback


def alibaba_body(*, uid: str, seed: str, content: dict) -> str:
    """The form-encoded body; `content` as ASCII JSON, so the checksum is over its bytes."""
    text = json.dumps(content, separators=(",", ":"))
    checksum = hashlib.sha256(f"{uid}{seed}{text}".encode()).hexdigest()
    return urlencode({"checksum": checksum, "content": text})


def task_callbacks_register(
    *, results: list[Result], url: str, seed: str, access_key: AccessKey | None, scenes: list[str]
) -> list[int]:
    """Remember an async scan's callback for its results, and write the scan callback of
    those already ready (a video fetched later gets it from scan_callbacks_ready). Call it in
    the transaction that stored the results."""
    now = timezone.now()
    registered = TaskCallback.objects.bulk_create(
        TaskCallback(
            result=result,
            task_id=result.task_id,
            url=url,
            seed=seed,
            access_key=access_key,
            scan_sent_at=None if result.fetch_status == FetchStatus.PENDING else now,
        )
        for result in results
    )
    ready = [(r, c) for r, c in zip(results, registered, strict=True) if c.scan_sent_at]
    return _deliveries_create(
        [(r, c.url, c.seed, answers.result_answer(r, scenes)) for r, c in ready],
        event=CallbackEvent.SCAN,
        decision=None,
    )


def scan_callbacks_ready(*, result_id: int) -> list[int]:
    """The scan callbacks of a result whose media fetch just ended (done or failed). Safe
    to run twice: each registration is claimed once."""
    pending = TaskCallback.objects.filter(result_id=result_id, scan_sent_at=None)
    claimed = list(pending.select_for_update())
    if not claimed:
        return []
    TaskCallback.objects.filter(id__in=[c.id for c in claimed]).update(scan_sent_at=timezone.now())
    result = Result.objects.get(id=result_id)
    content = answers.polled_answer(result.task_id, result)
    return _deliveries_create(
        [(result, c.url, c.seed, content) for c in claimed],
        event=CallbackEvent.SCAN,
        decision=None,
    )


def scan_failed_callback_create(*, task_id: str, url: str, seed: str, content: dict) -> list[int]:
    """The scan callback of an async image task whose image could not be fetched or read: no
    result was stored, so the delivery names only its task id."""
    delivery = _delivery(None, task_id, url, seed, content, event=CallbackEvent.SCAN, decision=None)
    return outbox.deliveries_queue([delivery])


def review_callbacks_create(*, decision, result_ids: list[int], event: str) -> list[int]:
    """The review callbacks of results a decision (or its propagation) changed: to each
    result's async-scan callback and to its biz type's AuditSetting callback, once per URL.
    Call it in the transaction that changed them, after the change."""
    targets: dict[int, dict[str, str]] = {}
    for callback in TaskCallback.objects.filter(result_id__in=result_ids).order_by("id"):
        targets.setdefault(callback.result_id, {}).setdefault(callback.url, callback.seed)
    results = Result.objects.filter(id__in=result_ids).order_by("id")
    audit_settings = {
        s.biz_type: s
        for s in AuditSetting.objects.filter(biz_type__in={r.biz_type for r in results}).exclude(
            callback_url=""
        )
    }
    rows = []
    for result in results:
        urls = dict(targets.get(result.id, {}))
        if (setting := audit_settings.get(result.biz_type)) is not None:
            urls.setdefault(setting.callback_url, setting.seed)
        content = _review_content(result)
        rows += [(result, url, seed, content) for url, seed in urls.items()]
    return _deliveries_create(rows, event=event, decision=decision)


def _review_content(result: Result) -> dict:
    # Checked against "Configure notifications" (https://help.aliyun.com/document_detail/
    # 130313.html, English: https://www.alibabacloud.com/help/en/content-moderation/latest/
    # enable-callback-notification): it confirms the form (checksum = SHA-256 of uid + seed +
    # content, content = the JSON as a string, form-encoded, retried) and that review results
    # (self-review or feedback) are sent like scan results, but the copies at hand end before
    # its "content" table, so these two fields are not confirmed by it.
    labels = [result.label] if result.suggestion == "block" and result.label else []
    return {
        "scanResult": answers.machine_answer(result),
        "auditResult": {"suggestion": result.suggestion, "labels": labels},
    }


def _deliveries_create(rows, *, event: str, decision) -> list[int]:
    now = timezone.now()
    deliveries = [
        _delivery(
            result, result.task_id, url, seed, content, event=event, decision=decision, now=now
        )
        for result, url, seed, content in rows
    ]
    return outbox.deliveries_queue(deliveries)


def _delivery(result, task_id, url, seed, content, *, event, decision, now=None):
    """An Alibaba-form delivery, due at once (`result` is None when none was stored)."""
    now = now or timezone.now()
    return CallbackDelivery(
        result=result,
        task_id=task_id,
        decision=decision,
        form=CallbackForm.ALIBABA,
        event=event,
        url=url,
        body=alibaba_body(uid=settings.GREEN_CALLBACK_UID, seed=seed, content=content),
        next_attempt_at=now,
        created_at=now,
    )


def task_callbacks_purge(*, now=None) -> int:
    """Forget the callbacks of async scans whose results have expired (a day's margin)."""
    keep = timedelta(days=settings.RESULT_RETENTION_DAYS + 1)
    deleted, _ = TaskCallback.objects.filter(created_at__lt=(now or timezone.now()) - keep).delete()
    return deleted
