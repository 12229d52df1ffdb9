from django.conf import settings
from django.db import models

from audit.models import MediaType, Suggestion

# Block categories: the value stored on a decision and its name on the page.
CATEGORY_NAMES = {
    "porn": "Porn",
    "terrorism": "Terrorism",
    "ad": "Ad",
    "undesirable": "Undesirable Scene",
    "abuse": "Abuse",
    "spam": "Spam",
    "contraband": "Contraband",
}
CATEGORY_CHOICES = list(CATEGORY_NAMES.items())
MEDIA_CATEGORIES = ["porn", "terrorism", "ad", "undesirable"]
TEXT_CATEGORIES = ["porn", "terrorism", "ad", "abuse", "spam", "contraband"]
DEFAULT_AUDIT_RANGE = [Suggestion.REVIEW.value, Suggestion.BLOCK.value]
DEFAULT_BIZ_TYPE = "default"


def default_audit_range() -> list[str]:
    return list(DEFAULT_AUDIT_RANGE)


def default_media_categories() -> list[str]:
    return list(MEDIA_CATEGORIES)


def default_text_categories() -> list[str]:
    return list(TEXT_CATEGORIES)


class Policy(models.Model):
    """What surfaces on the Audit page and how decisions behave, for one biz type.

    The policy of biz type "default" applies to every biz type without one of its own.
    """

    biz_type = models.CharField(max_length=64, unique=True)
    # Machine suggestions that surface on the Audit page, per content type.
    image_audit_range = models.JSONField(default=default_audit_range)
    video_audit_range = models.JSONField(default=default_audit_range)
    text_audit_range = models.JSONField(default=default_audit_range)
    # Categories a reviewer picks from when blocking, per content type.
    image_categories = models.JSONField(default=default_media_categories)
    video_categories = models.JSONField(default=default_media_categories)
    text_categories = models.JSONField(default=default_text_categories)
    propagate = models.BooleanField(
        default=True, help_text="Apply each decision to similar results too."
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.biz_type

    def audit_range(self, media_type: str) -> list[str]:
        return getattr(self, f"{MediaType(media_type).value}_audit_range")

    def categories(self, media_type: str) -> list[str]:
        return getattr(self, f"{MediaType(media_type).value}_categories")


class PolicyChange(models.Model):
    """One edit of a policy: who, when, and the policy before and after."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="changes")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    before = models.JSONField(null=True, blank=True)  # null when the change created the policy
    after = models.JSONField()

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.policy} changed at {self.changed_at:%Y-%m-%d %H:%M}"
