"""Human decisions: one transaction records the verdict on every selected result."""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit import callbacks, tasks
from audit.models import (
    CallbackEvent,
    Decision,
    DecisionItem,
    Result,
    Suggestion,
    VerdictSource,
)
from policies import selectors as policy_selectors

logger = logging.getLogger(__name__)


MAX_DECISION_ITEMS = 500
PASS_LABEL = "normal"  # noqa: S105 - the v1 label of a passed item


@dataclass(frozen=True)
class Conflict:
    """An item someone else decided since the reviewer saw it."""

    task_id: str
    decided_by: str | None
    decided_at: datetime | None
    suggestion: str
    label: str


@dataclass(frozen=True)
class DecisionOutcome:
    decision: Decision | None  # None when every item was a conflict
    decided: list[Result]
    conflicts: list[Conflict]


def decision_record(
    *,
    reviewer,
    task_ids: list[str],
    suggestion: str,
    label: str = "",
    note: str = "",
    channel: str,
    versions: dict[str, int] | None = None,
) -> DecisionOutcome:
    """Record a human verdict on results, all of them in one transaction and one Decision.

    `versions` maps task ids to the `Result.version` the reviewer saw: an item whose version
    moved on was decided by someone else meanwhile and is reported as a conflict instead of
    being overwritten. Without `versions` (API clients, admin actions), an item that a human
    already decided is a conflict.
    """
    task_ids = list(dict.fromkeys(task_ids))  # keep order, drop repeats
    _decision_validate_shape(task_ids, suggestion, note)
    with transaction.atomic():
        # Row locks serialize two reviewers deciding the same items; id order avoids deadlocks.
        results = list(
            Result.objects.select_for_update(of=("self",))
            .filter(task_id__in=task_ids)
            .order_by("id")
            .select_related("decided_by")
        )
        _decision_validate_items(task_ids, results, suggestion, label)
        label = PASS_LABEL if suggestion == Suggestion.PASS else label
        conflicts = [_conflict(r) for r in results if _is_conflict(r, versions)]
        conflicted = {c.task_id for c in conflicts}
        targets = [r for r in results if r.task_id not in conflicted]
        if not targets:
            return DecisionOutcome(decision=None, decided=[], conflicts=conflicts)
        decision = Decision.objects.create(
            reviewer=reviewer,
            channel=channel,
            suggestion=suggestion,
            label=label,
            note=note,
            item_count=len(targets),
        )
        DecisionItem.objects.bulk_create(
            DecisionItem(
                decision=decision,
                result=r,
                task_id=r.task_id,
                media_type=r.media_type,
                previous_suggestion=r.suggestion,
                previous_label=r.label,
                previous_source=r.verdict_source,
            )
            for r in targets
        )
        now = timezone.now()
        Result.objects.filter(id__in=[r.id for r in targets]).update(
            suggestion=suggestion,
            label=label,
            verdict_source=VerdictSource.HUMAN,
            reviewed=True,
            decided_by=reviewer,
            decided_at=now,
            decision=decision,
            version=F("version") + 1,
        )
        callbacks.callbacks_create(
            decision=decision, result_ids=[r.id for r in targets], event=CallbackEvent.DECISION
        )
        # The decision row itself says propagation is pending, so a lost message only
        # delays it: beat re-sends (decisions_propagate_pending).
        transaction.on_commit(lambda: tasks.decision_propagate.delay(decision.id), robust=True)
    decided = list(
        Result.objects.filter(id__in=[r.id for r in targets])
        .select_related("decided_by")
        .order_by("id")
    )
    return DecisionOutcome(decision=decision, decided=decided, conflicts=conflicts)


def _decision_validate_shape(task_ids: list[str], suggestion: str, note: str) -> None:
    errors = {}
    if not task_ids:
        errors["taskIds"] = "Select at least one item."
    elif len(task_ids) > MAX_DECISION_ITEMS:
        errors["taskIds"] = f"At most {MAX_DECISION_ITEMS} items per decision."
    if suggestion not in (Suggestion.PASS, Suggestion.BLOCK):
        errors["suggestion"] = "A decision is pass or block."
    if len(note) > 1000:
        errors["note"] = "The note is longer than 1000 characters."
    if errors:
        raise ValidationError(errors)


def _decision_validate_items(task_ids, results, suggestion, label) -> None:
    missing = set(task_ids) - {r.task_id for r in results}
    if missing:
        shown = ", ".join(sorted(missing)[:5])
        raise ValidationError({"taskIds": f"Unknown or expired taskIds: {shown}."})
    if suggestion != Suggestion.BLOCK:
        return
    if not label:
        raise ValidationError({"label": "Pick a category to block."})
    policies = {b: policy_selectors.policy_for(b) for b in {r.biz_type for r in results}}
    for result in results:
        allowed = policies[result.biz_type].categories(result.media_type)
        if label not in allowed:
            raise ValidationError(
                {
                    "label": f"{label!r} is not a category for {result.media_type} items of "
                    f"{result.biz_type!r}; choose one of: {', '.join(allowed)}."
                }
            )


def _is_conflict(result: Result, versions: dict[str, int] | None) -> bool:
    if versions is None:
        return result.verdict_source == VerdictSource.HUMAN
    expected = versions.get(result.task_id)
    return expected is not None and expected != result.version


def _conflict(result: Result) -> Conflict:
    return Conflict(
        task_id=result.task_id,
        decided_by=result.decided_by.get_username() if result.decided_by else None,
        decided_at=result.decided_at,
        suggestion=result.suggestion,
        label=result.label,
    )
