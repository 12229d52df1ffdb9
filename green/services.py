"""Writes of the green app: AccessKeys and the replay store."""

import secrets
import string
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit import services as audit_services
from audit.models import DecisionChannel, Result
from green import keystore
from green.models import AccessKey, Feedback, SeenRequest
from moderation_console import crypto

# Alibaba's own look: "LTAI" and 20 letters and digits for the id, 30 for the secret.
KEY_ID_PREFIX = "LTAI"
_ALPHABET = string.ascii_letters + string.digits
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
