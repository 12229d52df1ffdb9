"""Shapes of the policies API. The serializers check the shape of a body; the values are
checked by `services.policy_validate`, the one set of rules the admin and pages use too."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.models import MediaType, Suggestion
from audit.serializers import StrictCharField
from policies import services
from policies.models import CATEGORY_CHOICES

# Where each service field sits in the API body, for error messages.
API_PATHS = {
    **{f"{t}_audit_range": ("auditRange", t) for t in MediaType.values},
    **{f"{t}_categories": ("categories", t) for t in MediaType.values},
    "propagate": ("propagate",),
    "callback_url": ("callbackUrl",),
    "biz_type": ("bizType",),
}


class StrictBooleanField(serializers.BooleanField):
    """DRF's BooleanField takes "yes" and 1 too; a client sending those has a bug to hear of."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


@extend_schema_field(serializers.ListField(child=serializers.ChoiceField(Suggestion.choices)))
class SuggestionListField(serializers.ListField):
    child = StrictCharField(max_length=64)


@extend_schema_field(
    serializers.ListField(
        child=serializers.ChoiceField(CATEGORY_CHOICES),
        min_length=1,
        max_length=services.MAX_CATEGORIES,
    )
)
class CategoryListField(serializers.ListField):
    child = StrictCharField(max_length=64)


class AuditRangeSerializer(serializers.Serializer):
    """Per content type, the machine suggestions that surface on the Audit page."""

    image = SuggestionListField(source="image_audit_range")
    video = SuggestionListField(source="video_audit_range")
    text = SuggestionListField(source="text_audit_range")


class CategoriesSerializer(serializers.Serializer):
    """Per content type, the block categories offered to reviewers, in the order of keys 1-9."""

    image = CategoryListField(source="image_categories")
    video = CategoryListField(source="video_categories")
    text = CategoryListField(source="text_categories")


class PolicyDataSerializer(serializers.Serializer):
    """The editable part of a policy: the PUT body, and `before`/`after` in the history."""

    auditRange = AuditRangeSerializer(source="*")
    categories = CategoriesSerializer(source="*")
    propagate = StrictBooleanField(help_text="Apply each decision to similar results too.")
    callbackUrl = StrictCharField(
        source="callback_url",
        required=False,
        allow_blank=True,
        max_length=services.CALLBACK_URL_MAX_LENGTH,
        help_text="Changed results are POSTed here, signed with the policy's callback secret; "
        '"" turns callbacks off. Optional in a PUT: left out, it keeps its value.',
    )


class PolicyStateSerializer(PolicyDataSerializer):
    bizType = serializers.CharField(source="biz_type", read_only=True)
    callbackSecretSetAt = serializers.DateTimeField(
        source="callback_secret_set_at",
        read_only=True,
        allow_null=True,
        help_text="When the callback secret was generated (the secret itself is at "
        "/api/v1/policies/{bizType}/callback-secret).",
    )


class PolicyChangeSerializer(serializers.Serializer):
    changedBy = serializers.SerializerMethodField()
    changedAt = serializers.DateTimeField(source="changed_at")
    before = PolicyStateSerializer(allow_null=True, help_text="null when the change created it.")
    after = PolicyStateSerializer()

    def get_changedBy(self, change) -> str | None:  # noqa: N802
        return change.changed_by.get_username() if change.changed_by_id else None


class PolicySerializer(PolicyStateSerializer):
    updatedAt = serializers.DateTimeField(source="updated_at")
    updatedBy = serializers.SerializerMethodField()

    def get_updatedBy(self, policy) -> str | None:  # noqa: N802
        return policy.updated_by.get_username() if policy.updated_by_id else None


class PolicyDetailSerializer(PolicySerializer):
    history = PolicyChangeSerializer(
        many=True, source="recent_changes", help_text="The latest 20 changes, newest first."
    )


class CallbackSecretSerializer(serializers.Serializer):
    bizType = serializers.CharField(source="biz_type")
    callbackSecret = serializers.CharField(
        source="callback_secret", help_text='The HMAC-SHA256 key; "" until one is generated.'
    )
    callbackSecretSetAt = serializers.DateTimeField(
        source="callback_secret_set_at", allow_null=True
    )


def api_errors(error: DjangoValidationError) -> dict:
    """The service's per-field errors, placed where the fields sit in the API body."""
    nested: dict = {}
    for field, messages in error.message_dict.items():
        *parents, leaf = API_PATHS.get(field, (field,))
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = messages
    return nested
