"""Reads of policies. No caching: a policy change takes effect on the next page load."""

from dataclasses import dataclass

from django.db.models import Case, IntegerField, QuerySet, Value, When

from audit.models import MediaType, Suggestion
from policies import services
from policies.models import CATEGORY_NAMES, DEFAULT_BIZ_TYPE, Policy, PolicyChange

HISTORY_LENGTH = 20
HISTORY_FIELDS = (*services.POLICY_FIELDS, services.SECRET_MARKER_FIELD)
FIELD_LABELS = {"callback_url": "Callback URL", "callback_secret_set_at": "Callback secret"}


def policy_for(biz_type: str) -> Policy:
    """The policy of `biz_type`, else the default one (unsaved with defaults if deleted)."""
    found = {
        policy.biz_type: policy
        for policy in Policy.objects.filter(biz_type__in={biz_type, DEFAULT_BIZ_TYPE})
    }
    return found.get(biz_type) or found.get(DEFAULT_BIZ_TYPE) or Policy(biz_type=DEFAULT_BIZ_TYPE)


def audit_ranges(media_type: str) -> tuple[list[str], dict[str, list[str]]]:
    """The default audit range of `media_type`, and the range of every other biz type."""
    field = f"{MediaType(media_type).value}_audit_range"
    ranges = dict(Policy.objects.values_list("biz_type", field))
    default = ranges.pop(DEFAULT_BIZ_TYPE, None)
    if default is None:
        default = Policy(biz_type=DEFAULT_BIZ_TYPE).audit_range(media_type)
    return default, ranges


def policy_list() -> QuerySet[Policy]:
    """All policies, the default one first."""
    default_first = Case(
        When(biz_type=DEFAULT_BIZ_TYPE, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return Policy.objects.select_related("updated_by").order_by(default_first, "biz_type")


def policy_change_list(*, policy: Policy, limit: int = HISTORY_LENGTH) -> list[PolicyChange]:
    """The latest changes of `policy`, newest first."""
    return list(policy.changes.select_related("changed_by").order_by("-changed_at", "-id")[:limit])


@dataclass(frozen=True)
class FieldDiff:
    label: str
    before: str
    after: str


def policy_change_diff(change: PolicyChange) -> list[FieldDiff]:
    """The fields a change touched, as display text ("—" before a creation)."""
    before = change.before or {}
    return [
        FieldDiff(
            label=_field_label(field),
            before=_value_text(field, before[field]) if field in before else "—",
            after=_value_text(field, change.after.get(field)),
        )
        for field in HISTORY_FIELDS
        if _changed(field, before, change.after)
    ]


def _changed(field: str, before: dict, after: dict) -> bool:
    if field == services.SECRET_MARKER_FIELD:
        return before.get(field) != after.get(field)  # only when a secret was generated
    if field not in before and field not in after:
        return False  # recorded before the field existed
    return field not in before or before[field] != after.get(field)


def policy_summary(policy: Policy) -> list[tuple[str, str]]:
    """Each editable field of `policy` as (label, display text)."""
    return [
        (_field_label(field), _value_text(field, getattr(policy, field)))
        for field in services.POLICY_FIELDS
    ]


def _field_label(field: str) -> str:
    return FIELD_LABELS.get(field) or field.replace("_", " ").capitalize()


def _value_text(field: str, value) -> str:
    if field == "propagate":
        return "On" if value else "Off"
    if field == "callback_url":
        return value or "(none)"
    if field == services.SECRET_MARKER_FIELD:
        return f"generated {value[:19].replace('T', ' ')}" if value else "(none)"
    names = CATEGORY_NAMES if field in services.CATEGORY_FIELDS else dict(Suggestion.choices)
    return ", ".join(names.get(item, str(item)) for item in value or []) or "(none)"
