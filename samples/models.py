from django.conf import settings
from django.db import models

from audit.models import MediaType, Suggestion
from samples.fingerprint_base import FingerprintFields


class SampleLibrary(models.Model):
    """The samples of one content type and verdict (and, for block, one category)."""

    media_type = models.CharField(max_length=5, choices=MediaType.choices)
    suggestion = models.CharField(max_length=6, choices=Suggestion.choices)
    label = models.CharField(max_length=64, blank=True)  # the category; "" for pass
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "sample libraries"
        constraints = [
            models.UniqueConstraint(
                fields=["media_type", "suggestion", "label"], name="samplelibrary_unique"
            )
        ]

    def __str__(self) -> str:
        verdict = self.suggestion if not self.label else f"{self.suggestion} · {self.label}"
        return f"{self.media_type} {verdict}"


class Sample(models.Model):
    """An image or text a human decided, kept (with its own copy) beyond the 7-day store."""

    library = models.ForeignKey(SampleLibrary, on_delete=models.PROTECT, related_name="samples")
    media_type = models.CharField(max_length=5, choices=MediaType.choices)
    file = models.FileField(upload_to="samples/%Y/%m/", max_length=255, blank=True)
    text = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    decision = models.ForeignKey(
        "audit.Decision", null=True, blank=True, on_delete=models.SET_NULL, related_name="samples"
    )
    task_id = models.CharField(max_length=64, blank=True)  # the result it was copied from
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["library", "enabled"], name="sample_library_idx")]

    def __str__(self) -> str:
        return f"sample {self.id} ({self.library})"


class SampleFingerprint(FingerprintFields):
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="fingerprints")

    class Meta:
        indexes = [
            models.Index(fields=["kind", "key"], name="samplefp_key_idx"),
            # The indexes load one kind at a time, by id (samples.matching): sparse kinds too.
            models.Index(fields=["kind", "id"], name="samplefp_kind_id_idx"),
        ]


class SampleOrigin(models.Model):
    """A decision that taught a sample: the first one added it, near-copies decided later
    are linked here instead of filling the library with copies."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="origins")
    decision = models.ForeignKey(
        "audit.Decision", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    task_id = models.CharField(max_length=64)
    distance = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sample", "task_id"], name="sampleorigin_unique")
        ]

    def __str__(self) -> str:
        return f"{self.task_id} -> sample {self.sample_id}"


class SampleEvent(models.Model):
    """The record of adding, linking, disabling, enabling and removing samples."""

    class Action(models.TextChoices):
        ADDED = "added"
        LINKED = "linked"
        DISABLED = "disabled"
        ENABLED = "enabled"
        REMOVED = "removed"

    sample_id_value = models.BigIntegerField()  # kept after the sample is removed
    library = models.ForeignKey(SampleLibrary, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=8, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision = models.ForeignKey(
        "audit.Decision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"sample {self.sample_id_value} {self.action}"


class Keyword(models.Model):
    """A word or phrase of the built-in text engine: a text containing it (after the same
    normalization as matching: look-alike letters, full-width forms, spacing) is flagged."""

    text = models.CharField(max_length=200)
    label = models.CharField(max_length=64, help_text="The category, e.g. ad, abuse, contraband.")
    suggestion = models.CharField(
        max_length=6,
        choices=[(Suggestion.BLOCK, "Block"), (Suggestion.REVIEW, "Review")],
        default=Suggestion.REVIEW,
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["text"], name="keyword_text_unique")]

    def __str__(self) -> str:
        return self.text
