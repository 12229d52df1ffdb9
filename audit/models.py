import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from samples.fingerprint_base import INDEXED_KINDS, FingerprintFields


class MediaType(models.TextChoices):
    IMAGE = "image"
    VIDEO = "video"
    TEXT = "text"


class Suggestion(models.TextChoices):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    REVIEW = "review"
    BLOCK = "block"


# block > review > pass: the machine suggestion of a result is the worst over its scenes.
SUGGESTION_SEVERITY = {Suggestion.PASS: 0, Suggestion.REVIEW: 1, Suggestion.BLOCK: 2}

# Scenes of Alibaba Content Moderation v1 per content type.
SCENES = {
    MediaType.IMAGE: ("porn", "terrorism", "ad", "qrcode", "live", "logo"),
    MediaType.VIDEO: ("porn", "terrorism", "ad", "live", "logo", "sface"),
    MediaType.TEXT: ("antispam", "keyword"),
}


class VerdictSource(models.TextChoices):
    MACHINE = "machine"
    HUMAN = "human"
    PROPAGATED = "propagated"
    LIBRARY = "library", "Sample library"


class FetchStatus(models.TextChoices):
    NONE = "none", "Nothing to fetch"
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Result(models.Model):
    """One moderated item in the 7-day result store.

    On PostgreSQL the table is partitioned by day (audit.partitions): the id carries the day
    it was stored. Rows pointing at results have no database-level foreign key for that
    reason (db_constraint=False); the purge drops a day of every such table together.
    """

    media_type = models.CharField(max_length=5, choices=MediaType.choices)
    # One result per task id, kept by services.ingest (a unique index is impossible on the
    # day-partitioned store: its unique keys must contain the partition key, the id).
    task_id = models.CharField(max_length=64)
    data_id = models.CharField(max_length=128, blank=True)
    biz_type = models.CharField(max_length=64, default="default")

    url = models.URLField(max_length=2048, blank=True)
    file = models.FileField(upload_to="results/%Y/%m/%d/", max_length=255, blank=True)
    text = models.TextField(blank=True)
    content_format = models.CharField(max_length=16, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)

    fetch_status = models.CharField(
        max_length=8, choices=FetchStatus.choices, default=FetchStatus.NONE
    )
    fetch_error = models.CharField(max_length=500, blank=True)
    fetch_attempts = models.PositiveSmallIntegerField(default=0)

    # Machine results as received, in the v1 shape: [{scene, label, suggestion, rate,
    # details?, frames?}]. ResultScene rows index them for filtering.
    scene_results = models.JSONField(default=list)
    # Video frames: [{offset, url?, results: [{scene, label, suggestion, rate}]}].
    frames = models.JSONField(default=list, blank=True)
    machine_suggestion = models.CharField(max_length=6, choices=Suggestion.choices)
    machine_label = models.CharField(max_length=64, blank=True)

    # The current verdict: the machine's until a human (or something a human taught) decides.
    suggestion = models.CharField(max_length=6, choices=Suggestion.choices)
    label = models.CharField(max_length=64, blank=True)
    verdict_source = models.CharField(
        max_length=10, choices=VerdictSource.choices, default=VerdictSource.MACHINE
    )
    reviewed = models.BooleanField(default=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # see result_decided_by_idx: most rows have none
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # No index: nothing looks results up by decision (DecisionItem does that), and every
    # insert would pay for one.
    decision = models.ForeignKey(
        "Decision",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # Bumped by every decision, so a page that shows version N can tell that someone else
    # decided the item since it loaded (see services.decision_record).
    version = models.PositiveIntegerField(default=0, db_default=0)  # COPY may leave it out

    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [
            # The Audit queue: one tab, unreviewed, oldest first, keyset on (created_at, id);
            # partial, so it holds only what is left to review and the planner walks it.
            models.Index(
                fields=["media_type", "created_at", "id"],
                condition=models.Q(reviewed=False),
                name="result_unreviewed_idx",
            ),
            models.Index(
                fields=["decided_by", "created_at"],
                condition=models.Q(decided_by__isnull=False),
                name="result_decided_by_idx",
            ),
            models.Index(fields=["created_at", "id"], name="result_created_idx"),
            models.Index(fields=["data_id"], name="result_data_id_idx"),
            models.Index(fields=["task_id"], name="result_task_id_idx"),
            # The same queue narrowed to one biz type (a common filter and policy scope).
            models.Index(
                fields=["media_type", "biz_type", "created_at", "id"],
                condition=models.Q(reviewed=False),
                name="result_unreviewed_biz_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(media_type__in=MediaType.values), name="result_media_type_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(machine_suggestion__in=Suggestion.values),
                name="result_machine_suggestion_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(suggestion__in=Suggestion.values), name="result_suggestion_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.media_type} {self.task_id}"


class ResultScene(models.Model):
    """One scene result of a Result, kept in rows so scene and label filters use an index."""

    result = models.ForeignKey(
        Result,
        on_delete=models.CASCADE,
        related_name="scenes",
        db_index=False,
        db_constraint=False,
    )
    scene = models.CharField(max_length=16)
    label = models.CharField(max_length=64)
    suggestion = models.CharField(max_length=6, choices=Suggestion.choices)
    rate = models.FloatField()

    class Meta:
        indexes = [
            models.Index(fields=["scene", "label", "result"], name="resultscene_label_idx"),
            models.Index(fields=["result", "scene"], name="resultscene_result_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.scene}:{self.label} {self.suggestion} {self.rate}"


class ResultFingerprint(FingerprintFields):
    """A fingerprint of a result, for finding similar results when a decision propagates."""

    result = models.ForeignKey(
        Result, on_delete=models.CASCADE, related_name="fingerprints", db_constraint=False
    )

    class Meta:
        indexes = [
            # Partial: most rows (PDQ codes, thumbnails) have no key and are never looked up
            # by one (a query's `key IN (...)` implies the condition).
            models.Index(
                fields=["kind", "key"],
                name="resultfp_key_idx",
                condition=models.Q(key__isnull=False),
            ),
            # The indexes load one kind at a time, by id (samples.matching): sparse kinds too.
            models.Index(
                fields=["kind", "id"],
                name="resultfp_kind_id_idx",
                condition=models.Q(kind__in=INDEXED_KINDS),
            ),
        ]


class ResultStub(models.Model):
    """What remains of a result after the purge: enough to answer 410 Gone for its task id.

    Written when the result is stored (so purging writes nothing) and kept
    RESULT_STUB_DAYS past the result's expiry; partitioned like the results on PostgreSQL.
    """

    result_id = models.BigIntegerField(primary_key=True)
    task_id = models.CharField(max_length=64)
    media_type = models.CharField(max_length=5, choices=MediaType.choices)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["task_id"], name="resultstub_task_idx")]

    def __str__(self) -> str:
        return f"{self.media_type} {self.task_id} (expires {self.expires_at:%Y-%m-%d})"


class DecisionChannel(models.TextChoices):
    CONSOLE = "console"
    API = "api", "API"
    ADMIN = "admin"
    # A client's own correction (the Alibaba-compatible /green/<type>/feedback).
    FEEDBACK = "feedback"


class PropagationState(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped", "Skipped (policy)"


class Decision(models.Model):
    """A reviewer's verdict on one or more results: the record that outlives the results."""

    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="decisions"
    )
    channel = models.CharField(max_length=8, choices=DecisionChannel.choices)
    suggestion = models.CharField(max_length=6, choices=Suggestion.choices)
    label = models.CharField(max_length=64)
    note = models.TextField(blank=True)
    item_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Propagation to similar results is recorded here in the decision's own transaction, so
    # it survives a broker that loses the task (beat re-sends what is still pending).
    propagation = models.CharField(
        max_length=7, choices=PropagationState.choices, default=PropagationState.PENDING
    )
    propagated_at = models.DateTimeField(null=True, blank=True)
    propagation_attempts = models.PositiveSmallIntegerField(default=0)
    changed_count = models.PositiveIntegerField(default=0)
    changed_task_ids = models.JSONField(default=list, blank=True)
    samples_added = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(propagation="pending"),
                name="decision_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.suggestion} {self.label}"


class DecisionItem(models.Model):
    """One result a decision was made on, with the verdict it replaced."""

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="items")
    # The result goes after its retention period; the task id and verdicts stay.
    result = models.ForeignKey(
        Result,
        null=True,
        on_delete=models.SET_NULL,
        related_name="decision_items",
        db_constraint=False,
    )
    task_id = models.CharField(max_length=64)
    media_type = models.CharField(max_length=5, choices=MediaType.choices)
    previous_suggestion = models.CharField(max_length=6, choices=Suggestion.choices)
    previous_label = models.CharField(max_length=64, blank=True)
    previous_source = models.CharField(max_length=10, choices=VerdictSource.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["decision", "task_id"], name="decisionitem_unique")
        ]
        indexes = [models.Index(fields=["task_id"], name="decisionitem_task_idx")]

    def __str__(self) -> str:
        return f"{self.decision_id}: {self.task_id}"


class DecisionTarget(models.Model):
    """A result a decision changed by propagation; unique, so a second run changes nothing."""

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="targets")
    result = models.ForeignKey(
        Result,
        null=True,
        on_delete=models.SET_NULL,
        related_name="decision_targets",
        db_constraint=False,
    )
    task_id = models.CharField(max_length=64)
    distance = models.PositiveSmallIntegerField(default=0)
    matched_by = models.CharField(max_length=16, blank=True)
    previous_suggestion = models.CharField(max_length=6, choices=Suggestion.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["decision", "task_id"], name="decisiontarget_unique")
        ]

    def __str__(self) -> str:
        return f"{self.decision_id} -> {self.task_id}"


class CallbackEvent(models.TextChoices):
    DECISION = "decision"
    PROPAGATION = "propagation"
    SCAN = "scan"  # an async scan's result is ready (Alibaba form only)


class CallbackForm(models.TextChoices):
    # JSON body, X-Signature HMAC with the policy's secret (audit.callbacks).
    CONSOLE = "console"
    # Alibaba Content Moderation's: form-encoded checksum + content (green.callbacks).
    ALIBABA = "alibaba"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class CallbackDelivery(models.Model):
    """One POST of a changed result to its policy's callback URL, and how it went.

    Created in the transaction that changed the result, so the database is the outbox: a lost
    broker message only delays the send (beat sends whatever is due).
    """

    # Public id: the body's deliveryId and the X-Delivery-Id header, for receivers to dedupe.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The result goes after its retention period; the task id stays.
    result = models.ForeignKey(
        Result,
        null=True,
        on_delete=models.SET_NULL,
        related_name="callback_deliveries",
        db_constraint=False,
    )
    task_id = models.CharField(max_length=64)
    # None for the callback of an async scan's result: no decision made it.
    decision = models.ForeignKey(
        Decision, null=True, on_delete=models.CASCADE, related_name="callback_deliveries"
    )
    form = models.CharField(
        max_length=7, choices=CallbackForm.choices, default=CallbackForm.CONSOLE
    )
    # The policy whose URL this was and whose current secret signs each attempt (console
    # form; the Alibaba form's checksum is computed once, into the body).
    policy = models.ForeignKey(
        "policies.Policy", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    event = models.CharField(max_length=11, choices=CallbackEvent.choices)
    url = models.CharField(max_length=2048)
    # The exact text sent (ASCII), the same on every attempt: JSON (console form), or
    # `checksum=...&content=...` (Alibaba form).
    body = models.TextField()
    status = models.CharField(
        max_length=9, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # When a pending delivery is next due; None once it is delivered or failed.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "callback deliveries"
        indexes = [
            # The due query: pending only, by when each is due.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="callback_due_idx",
            ),
            models.Index(fields=["task_id"], name="callback_task_idx"),
            models.Index(fields=["created_at"], name="callback_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=DeliveryStatus.values),
                name="callback_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.task_id} → {self.url}"


class PurgeStatus(models.TextChoices):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped", "Skipped (another run held the lock)"


class PurgeRun(models.Model):
    """One run of the retention job, for the admin: when it ran and what it removed."""

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=PurgeStatus.choices)
    cutoff = models.DateTimeField(help_text="Results that expired before this were removed.")
    results_removed = models.PositiveIntegerField(default=0)
    partitions_dropped = models.JSONField(default=list, blank=True)  # days, on PostgreSQL
    rows_deleted = models.PositiveIntegerField(default=0)  # by batched DELETE
    stubs_removed = models.PositiveIntegerField(default=0)
    files_removed = models.PositiveIntegerField(default=0)
    partitions_created = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"purge {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class JobLock(models.Model):
    """A lease that lets one run of a job at a time proceed (audit.locks), on any database."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
