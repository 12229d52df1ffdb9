"""Writes of the green app: AccessKeys, the replay store, feedback and async image scans."""

import secrets
import string
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from audit import scanning
from audit import services as audit_services
from audit.models import DecisionChannel, MediaType, Result
from green import answers, callbacks, keystore, tasks
from green.models import AccessKey, AsyncImageScan, AsyncImageScanStatus, Feedback, SeenRequest
from moderation_console import crypto

# Alibaba's own look: "LTAI" and 20 letters and digits for the id, 30 for the secret.
KEY_ID_PREFIX = "LTAI"
_ALPHABET = string.ascii_letters + string.digits
# A pending image scan older than this is sent to the workers again when it is polled.
IMAGE_SCAN_RESEND_AFTER = timedelta(minutes=2)
# last_used_at is written at most this often, so a busy key is not one UPDATE per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def access_key_issue(
    *, user, name: str = "", biz_types: list[str] | None = None, created_by=None
) -> tuple[AccessKey, str]:
    """A new pair; the secret in clear is returned this once (the admin shows it once)."""
    secret = _random(30)
    key = AccessKey.objects.create(
        access_key_id=KEY_ID_PREFIX + _random(20),
        secret_encrypted=crypto.encrypt(secret),
        user=user,
        name=name,
        biz_types=list(biz_types or []),
        created_by=created_by,
    )
    return key, secret


def access_key_revoke(*, access_key: AccessKey, by=None) -> bool:
    """Revoke for good (a revoked key is never enabled again); False if it already was."""
    revoked = AccessKey.objects.filter(id=access_key.id, revoked_at=None).update(
        revoked_at=timezone.now(), revoked_by=by, enabled=False
    )
    access_key.refresh_from_db()
    access_key_changed(access_key=access_key)
    return bool(revoked)


def access_key_changed(*, access_key: AccessKey) -> None:
    """After any change to a key's row: cached copies reload it (see green.keystore)."""
    keystore.key_forget(access_key.access_key_id)  # and again once committed, below
    transaction.on_commit(lambda: keystore.key_changed(access_key.access_key_id), robust=True)


def access_key_touch(*, access_key: AccessKey, now: datetime) -> None:
    last = access_key.last_used_at
    if last is None or now - last >= LAST_USED_RESOLUTION:
        AccessKey.objects.filter(id=access_key.id).update(last_used_at=now)
        access_key.last_used_at = now


def request_claim(*, access_key_id: str, kind: str, value: str, expires_at: datetime) -> bool:
    """Record a nonce or signature as used; False if it already was (a replay).

    The unique key makes this atomic across processes: two requests racing with the same
    nonce both try the INSERT and exactly one succeeds.
    """
    key = keystore.seen_key(access_key_id, kind, value)
    for _ in range(2):
        try:
            with transaction.atomic():
                _commit_without_waiting_for_disk()
                SeenRequest.objects.create(key=key, expires_at=expires_at)
            return True
        except IntegrityError:
            # A row past its expiry that the purge has not reached yet does not count.
            expired = SeenRequest.objects.filter(key=key, expires_at__lt=timezone.now())
            if not expired.delete()[0]:
                return False
    return False


def _commit_without_waiting_for_disk() -> None:
    # PostgreSQL: this commit returns before its WAL reaches the disk (still atomic and
    # ordered; a crash may lose the last fraction of a second of claims, which only reopens
    # those nonces to a replay until their window closes). Waiting for the flush was most
    # of what signature checking cost per request (benchmarks/green_api.py).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def seen_requests_purge(*, now: datetime | None = None) -> int:
    deleted, _ = SeenRequest.objects.filter(expires_at__lt=now or timezone.now()).delete()
    return deleted


def feedback_record(
    *, access_key: AccessKey, result: Result, suggestion: str, label: str, note: str = ""
) -> Feedback:
    """A client's correction of `result`, decided like a reviewer's decision (its user is the
    key's): it overrides the current verdict, even a reviewer's, as the latest word."""
    with transaction.atomic():
        outcome = audit_services.decision_record(
            reviewer=access_key.user,
            task_ids=[result.task_id],
            suggestion=suggestion,
            label=label,
            note=note or f"Feedback through AccessKey {access_key.access_key_id}",
            channel=DecisionChannel.FEEDBACK,
            versions={result.task_id: result.version},
        )
        return Feedback.objects.create(
            access_key=access_key,
            decision=outcome.decision,
            task_id=result.task_id,
            media_type=result.media_type,
            suggestion=suggestion,
            label=outcome.decision.label if outcome.decision else label,
            note=note,
        )


class ImageScanRetry(Exception):
    """The image could not be fetched this time, and attempts remain."""


def image_scans_submit(
    *,
    biz_type: str,
    scenes: list[str],
    items: list[dict],
    callback: str = "",
    seed: str = "",
    access_key: AccessKey | None = None,
) -> list[AsyncImageScan]:
    """Async image tasks given by URL (validated ScanTaskSerializer items), stored for a
    worker to scan (image_scan_run). Idempotent by taskId: a task id already submitted keeps
    its first submission."""
    scans = [
        AsyncImageScan(
            task_id=item.get("task_id") or audit_services.task_id_generate(MediaType.IMAGE),
            biz_type=biz_type,
            scenes=scenes,
            item=item,
            callback_url=callback,
            seed=seed,
            access_key=access_key,
        )
        for item in items
    ]
    with transaction.atomic():
        AsyncImageScan.objects.bulk_create(scans, ignore_conflicts=True)
        stored = AsyncImageScan.objects.in_bulk([s.task_id for s in scans], field_name="task_id")
        pending = [s.id for s in stored.values() if s.status == AsyncImageScanStatus.PENDING]
        # robust: the rows are committed, and a broker that is down must not turn that into
        # an error (a poll of a stale pending scan sends it again).
        if pending:
            transaction.on_commit(lambda: tasks.image_scans_run.delay(pending), robust=True)
    return [stored[s.task_id] for s in scans]


def image_scan_run(*, scan_id: int) -> None:
    """Fetch and scan one async image task, through the sync scan's own code (fetch,
    fingerprints, sample libraries, engine), which stores the Result under the task's id.
    Safe to run twice: the store is idempotent by task id, and finishing is claimed once.

    Raises ImageScanRetry when the fetch failed transiently and attempts remain."""
    scan = AsyncImageScan.objects.filter(id=scan_id, status=AsyncImageScanStatus.PENDING).first()
    if scan is None:
        return
    [scanned] = scanning.results_scan(
        media_type=MediaType.IMAGE,
        biz_type=scan.biz_type,
        scenes=scan.scenes,
        items=[{**scan.item, "task_id": scan.task_id}],
        after_store=lambda results: _image_scan_done(scan, results),
    )
    if scanned.result is not None:
        return
    attempts = scan.attempts + 1
    if scanned.transient and attempts < settings.FETCH_MAX_ATTEMPTS:
        AsyncImageScan.objects.filter(id=scan.id, status=AsyncImageScanStatus.PENDING).update(
            attempts=attempts, error_code=scanned.error_code, error=scanned.error[:500]
        )
        raise ImageScanRetry(scanned.error)
    _image_scan_failed(scan, scanned, attempts)


def _image_scan_done(scan: AsyncImageScan, results: list[Result]) -> None:
    # In the transaction that stored the result: the scan is finished with it, or not at all.
    pending = AsyncImageScan.objects.filter(id=scan.id, status=AsyncImageScanStatus.PENDING)
    finished = pending.update(
        status=AsyncImageScanStatus.DONE,
        attempts=F("attempts") + 1,
        error_code="",
        error="",
        finished_at=timezone.now(),
    )
    if finished and scan.callback_url:
        callbacks.task_callbacks_register(
            results=results,
            url=scan.callback_url,
            seed=scan.seed,
            access_key=scan.access_key,
            scenes=scan.scenes,
        )


@transaction.atomic
def _image_scan_failed(scan: AsyncImageScan, scanned: scanning.Scanned, attempts: int) -> None:
    failed = AsyncImageScan.objects.filter(id=scan.id, status=AsyncImageScanStatus.PENDING).update(
        status=AsyncImageScanStatus.FAILED,
        attempts=attempts,
        error_code=scanned.error_code,
        error=scanned.error[:500],
        finished_at=timezone.now(),
    )
    if failed and scan.callback_url:
        scan.refresh_from_db()
        callbacks.scan_failed_callback_create(
            task_id=scan.task_id,
            url=scan.callback_url,
            seed=scan.seed,
            content=answers.image_scan_answer(scan),
        )


def image_scans_resend_stale(
    scans: list[AsyncImageScan], *, now: datetime | None = None
) -> list[int]:
    """Send pending scans that have waited a while to the workers again: the broker may have
    lost their message. Called when they are polled; harmless if the first run is still
    going (image_scan_run is idempotent)."""
    cutoff = (now or timezone.now()) - IMAGE_SCAN_RESEND_AFTER
    stale = [
        s.id for s in scans if s.status == AsyncImageScanStatus.PENDING and s.created_at < cutoff
    ]
    if stale:
        tasks.image_scans_run.delay(stale)
    return stale


def image_scans_resend_pending(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """The beat job's side of image_scans_resend_stale: pending scans that nobody polls (a
    client that waits for its callback) are sent again too."""
    cutoff = (now or timezone.now()) - IMAGE_SCAN_RESEND_AFTER
    pending = AsyncImageScan.objects.filter(
        status=AsyncImageScanStatus.PENDING, created_at__lt=cutoff
    )
    return image_scans_resend_stale(list(pending.order_by("id")[:limit]), now=now)


def image_scans_purge(*, now: datetime | None = None) -> int:
    """Forget async image scans once their results have expired (a day's margin)."""
    keep = timedelta(days=settings.RESULT_RETENTION_DAYS + 1)
    old = AsyncImageScan.objects.filter(created_at__lt=(now or timezone.now()) - keep)
    return old.delete()[0]
