from django.conf import settings
from django.db import models

from moderation_console import crypto


class AccessKey(models.Model):
    """An AccessKey pair for Alibaba's SDKs: the id is public, the secret signs requests.

    The secret is kept encrypted (moderation_console.crypto), not hashed: verifying an HMAC
    signature needs the secret itself.
    """

    access_key_id = models.CharField("AccessKey ID", max_length=32, unique=True, editable=False)
    secret_encrypted = models.TextField(editable=False)
    # Requests signed with the key act as this user, with this user's permissions.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="green_access_keys"
    )
    name = models.CharField(max_length=100, blank=True, help_text="Who or what holds the key.")
    # Biz types the key may scan and read; empty: any.
    biz_types = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "AccessKey"

    def __str__(self) -> str:
        return f"{self.access_key_id} ({self.name or self.user})"

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    @property
    def active(self) -> bool:
        return self.enabled and self.revoked_at is None

    def allows(self, biz_type: str) -> bool:
        return not self.biz_types or biz_type in self.biz_types


class SeenRequest(models.Model):
    """A nonce (or, when the SDK sends none, a signature) already used, kept until a request
    carrying it would be refused for its date anyway: a replay within the window fails on the
    unique key."""

    key = models.CharField(max_length=64, unique=True)  # sha256 hex: key id, kind, nonce
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.key


class Feedback(models.Model):
    """A client's own correction through /green/<type>/feedback: recorded as a decision by the
    key's user (so it teaches the libraries and propagates like a reviewer's), and here with
    the key it came from."""

    access_key = models.ForeignKey(AccessKey, on_delete=models.PROTECT, related_name="feedback")
    decision = models.ForeignKey(
        "audit.Decision", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    task_id = models.CharField(max_length=64)
    media_type = models.CharField(max_length=5)
    suggestion = models.CharField(max_length=6)
    label = models.CharField(max_length=64, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "feedback"

    def __str__(self) -> str:
        return f"{self.access_key.access_key_id}: {self.task_id} {self.suggestion}"


class AuditSetting(models.Model):
    """What the console API's UpdateAuditSetting sets beyond the policy's audit range: where
    human review results go in Alibaba's callback form, and the seed of their checksum, per
    biz type. (The policy's own callback URL gets the console's signed JSON form instead.)"""

    biz_type = models.CharField(max_length=64, unique=True)
    callback_url = models.CharField(max_length=2048, blank=True)
    seed = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.biz_type


class TaskCallback(models.Model):
    """The `callback` and `seed` an async scan request gave for its tasks: the result is
    POSTed there in Alibaba's form when it is ready, and again when a human decision (or its
    propagation) changes it (green.callbacks)."""

    # The result goes after its retention period (and this row with the purge of callbacks).
    result = models.ForeignKey(
        "audit.Result", null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    task_id = models.CharField(max_length=64, db_index=True)
    url = models.CharField(max_length=2048)
    seed = models.CharField(max_length=64)
    access_key = models.ForeignKey(
        AccessKey, null=True, on_delete=models.SET_NULL, related_name="task_callbacks"
    )
    # Set once the scan-result callback is written (at once for images, after the fetch for
    # videos), so a second fetch run does not write it again.
    scan_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.task_id} → {self.url}"


class AsyncImageScanStatus(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class AsyncImageScan(models.Model):
    """An async image scan of a URL, waiting for its worker: the task fetches the image and
    scans it like the sync scan (green.services.image_scan_run), which stores the Result.
    Until then /green/image/results answers 280 PROCESSING for its taskId; a fetch that
    failed for good is answered from here."""

    task_id = models.CharField(max_length=64, unique=True)
    biz_type = models.CharField(max_length=64)
    scenes = models.JSONField()
    # The validated scan task: url, data_id, and the results an upstream engine sent along.
    item = models.JSONField()
    callback_url = models.CharField(max_length=2048, blank=True)
    seed = models.CharField(max_length=64, blank=True)
    access_key = models.ForeignKey(
        AccessKey, null=True, on_delete=models.SET_NULL, related_name="async_image_scans"
    )
    status = models.CharField(
        max_length=7, choices=AsyncImageScanStatus.choices, default=AsyncImageScanStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    error_code = models.CharField(max_length=32, blank=True)  # audit.scanning's, as in Scanned
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.task_id} ({self.status})"

    @property
    def data_id(self) -> str:
        return self.item.get("data_id", "")
