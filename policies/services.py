"""Every write to policies: create, update and delete, each with its history record."""

import logging
import re
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import fetch
from audit.models import MediaType, Suggestion
from moderation_console import crypto
from policies.models import CATEGORY_NAMES, DEFAULT_BIZ_TYPE, Policy, PolicyChange

logger = logging.getLogger(__name__)

AUDIT_RANGE_FIELDS = tuple(f"{t}_audit_range" for t in MediaType.values)
CATEGORY_FIELDS = tuple(f"{t}_categories" for t in MediaType.values)
POLICY_FIELDS = (*AUDIT_RANGE_FIELDS, *CATEGORY_FIELDS, "propagate", "callback_url")
# History shows when the callback secret was replaced, never the secret.
SECRET_MARKER_FIELD = "callback_secret_set_at"  # noqa: S105 - a field name
CALLBACK_URL_MAX_LENGTH = 2048
# Reviewers pick a category with the keys 1-9.
MAX_CATEGORIES = 9
# \Z, not $: `$` also matches before a trailing newline.
BIZ_TYPE_RE = re.compile(r"\A[A-Za-z0-9_\-]{1,64}\Z")
# The console's create page lives at /policies/new/, which would hide a policy named "new".
RESERVED_BIZ_TYPES = {"new"}


def biz_type_validate(value: str) -> None:
    if not isinstance(value, str) or not BIZ_TYPE_RE.match(value):
        raise ValidationError("Use 1-64 letters, digits, _ and - characters.")
    if value in RESERVED_BIZ_TYPES:
        raise ValidationError(f"“{value}” is reserved; pick another name.")


def policy_as_dict(policy: Policy) -> dict:
    """The editable state of a policy, and when its callback secret was set: what history rows
    store and the API shows."""
    set_at = policy.callback_secret_set_at
    return (
        {"biz_type": policy.biz_type}
        | {f: getattr(policy, f) for f in POLICY_FIELDS}
        | {SECRET_MARKER_FIELD: set_at.isoformat() if set_at else None}
    )


def policy_validate(data: dict) -> dict:
    """Checks the fields given in `data` and returns them cleaned.

    Raises ValidationError with a message list per field. Fields left out are not checked.
    """
    errors: dict[str, list[str]] = {}
    cleaned = {}
    for field, value in data.items():
        try:
            cleaned[field] = _field_clean(field, value)
        except ValidationError as error:
            errors[field] = error.messages
    if errors:
        raise ValidationError(errors)
    return cleaned


def _field_clean(field: str, value):
    if field in AUDIT_RANGE_FIELDS:
        return _audit_range_clean(value)
    if field in CATEGORY_FIELDS:
        return _categories_clean(value)
    if field == "propagate":
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value
    if field == "callback_url":
        return _callback_url_clean(value)
    raise ValidationError("Unknown field.")


def _callback_url_clean(value) -> str:
    if not isinstance(value, str):
        raise ValidationError("Must be a URL, or empty to turn callbacks off.")
    value = value.strip()
    if not value:
        return ""
    if len(value) > CALLBACK_URL_MAX_LENGTH:
        raise ValidationError(f"At most {CALLBACK_URL_MAX_LENGTH} characters.")
    # The sender's own rules, so a URL saved here is one it will POST to.
    try:
        fetch.url_check(value, allowed_networks=settings.FETCH_ALLOWED_NETWORKS)
    except fetch.FetchError as error:
        hint = (
            " (FETCH_ALLOWED_NETWORKS names allowed ones)"
            if error.code == "blocked_address"
            else ""
        )
        raise ValidationError(f"Not a usable callback URL: {error}{hint}.") from None
    return value


def _strings_clean(value, allowed) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationError("Must be a list of strings.")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        listed = ", ".join(repr(v[:40]) for v in unknown)
        raise ValidationError(f"Unknown {listed}; expected some of: {', '.join(allowed)}.")
    if len(set(value)) != len(value):
        raise ValidationError("Lists a value more than once.")
    return list(value)


def _audit_range_clean(value) -> list[str]:
    chosen = set(_strings_clean(value, Suggestion.values))
    # Order carries no meaning here: store it canonically so a reorder is not a change.
    return [s for s in Suggestion.values if s in chosen]


def _categories_clean(value) -> list[str]:
    # Order matters: it is the order of the keys 1-9 on the Audit page.
    categories = _strings_clean(value, list(CATEGORY_NAMES))
    if not categories:
        raise ValidationError("Pick at least one category.")
    if len(categories) > MAX_CATEGORIES:
        raise ValidationError(f"At most {MAX_CATEGORIES}, one per key 1-9.")
    return categories


def _biz_type_check(biz_type: str) -> None:
    try:
        biz_type_validate(biz_type)
    except ValidationError as error:
        raise ValidationError({"biz_type": error.messages}) from None


def _policy_locked(biz_type: str) -> Policy | None:
    # The row lock serializes concurrent edits, so each history row's "before" is what the
    # edit really replaced.
    return Policy.objects.select_for_update().filter(biz_type=biz_type).first()


def _change_record(policy: Policy, user, before: dict | None) -> None:
    PolicyChange.objects.create(
        policy=policy, changed_by=user, before=before, after=policy_as_dict(policy)
    )


@transaction.atomic
def policy_update(*, biz_type: str, data: dict, user) -> tuple[Policy, bool]:
    """Creates or updates the policy of `biz_type` with the fields in `data`.

    Fields left out keep their value (or the model default when creating). Returns the
    policy and whether it was created. An update that changes nothing records nothing.
    """
    _biz_type_check(biz_type)
    values = policy_validate(data)
    policy = _policy_locked(biz_type)
    if policy is None:
        secret = _secret_fields() if values.get("callback_url") else {}
        try:
            with transaction.atomic():
                policy = Policy.objects.create(
                    biz_type=biz_type, updated_by=user, **values, **secret
                )
        except IntegrityError:
            # Created by someone else since we looked: update theirs instead.
            policy = _policy_locked(biz_type)
        else:
            _change_record(policy, user, before=None)
            return policy, True
    return _policy_apply(policy, values, user), False


def _policy_apply(policy: Policy, values: dict, user) -> Policy:
    """Caller holds the lock on the policy row."""
    before = policy_as_dict(policy)
    if values.get("callback_url") and not policy.callback_secret_encrypted:
        values = values | _secret_fields()
    for field, value in values.items():
        setattr(policy, field, value)
    if policy_as_dict(policy) == before:
        return policy
    policy.updated_by = user
    policy.save()
    _change_record(policy, user, before=before)
    return policy


def _secret_fields() -> dict:
    # 32 random bytes: the HMAC-SHA256 key size; url-safe so it pastes into any config.
    return {
        "callback_secret_encrypted": crypto.encrypt(secrets.token_urlsafe(32)),
        "callback_secret_set_at": timezone.now(),
    }


@transaction.atomic
def policy_secret_rotate(*, biz_type: str, user) -> Policy:
    """Replaces the callback secret of a policy with a new one; the change is recorded (the
    time it was set, not the secret). Raises Policy.DoesNotExist for an unknown biz type."""
    policy = _policy_locked(biz_type)
    if policy is None:
        raise Policy.DoesNotExist(f"No policy for biz type {biz_type!r}.")
    return _policy_apply(policy, _secret_fields(), user)


@transaction.atomic
def policy_delete(*, biz_type: str, user) -> None:
    """Deletes a policy; its biz type falls back to the default policy.

    Its history goes with it (PolicyChange cascades), so the deletion and the last state are
    logged. Raises Policy.DoesNotExist for an unknown biz type.
    """
    if biz_type == DEFAULT_BIZ_TYPE:
        raise ValidationError(
            {"biz_type": ["The default policy applies to every other biz type: keep it."]}
        )
    policy = _policy_locked(biz_type)
    if policy is None:
        raise Policy.DoesNotExist(f"No policy for biz type {biz_type!r}.")
    last_state = policy_as_dict(policy)
    policy.delete()
    logger.info("Policy deleted by %s: %s", user.get_username() if user else None, last_state)
