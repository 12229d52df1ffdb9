"""Propagation: a decision teaches similar results and the sample libraries."""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit import callbacks
from audit.models import (
    CallbackEvent,
    Decision,
    DecisionTarget,
    PropagationState,
    Result,
    VerdictSource,
)
from policies import selectors as policy_selectors
from samples import matching
from samples import services as sample_services

from .fingerprinting import fingerprints_ensure

logger = logging.getLogger(__name__)


PROPAGATION_RESEND_AFTER = timedelta(seconds=60)


def decision_propagate(*, decision_id: int) -> None:
    """Give the decision's verdict to every similar result and teach the sample libraries.

    All of it in one transaction with the decision row locked: a worker that dies midway
    leaves nothing half-applied and the redelivered task does it all; a second run finds the
    decision done and changes nothing.
    """
    with transaction.atomic():
        decision = Decision.objects.select_for_update().filter(id=decision_id).first()
        if decision is None or decision.propagation != PropagationState.PENDING:
            return
        decided = list(
            Result.objects.filter(decision_items__decision=decision).prefetch_related(
                "fingerprints"
            )
        )
        for result in decided:
            fingerprints_ensure(result)
        targets = _propagation_targets(decision, decided)
        changed = _propagation_apply(decision, targets)
        learned = [
            outcome
            for result in decided
            if (outcome := sample_services.sample_learn(result=result, decision=decision))
        ]
        decision.propagation = PropagationState.DONE
        decision.propagated_at = timezone.now()
        decision.propagation_attempts = F("propagation_attempts") + 1
        decision.changed_count = len(changed)
        decision.changed_task_ids = changed[:1000]
        decision.samples_added = learned
        decision.save()


def _propagation_targets(decision: Decision, decided: list[Result]) -> dict[int, matching.Match]:
    targets: dict[int, matching.Match] = {}
    decided_ids = {r.id for r in decided}
    for result in decided:
        policy = policy_selectors.policy_for(result.biz_type)
        if not policy.propagate:
            continue
        for match in matching.results_similar(result):
            if match.id not in decided_ids and (
                match.id not in targets or match.distance < targets[match.id].distance
            ):
                targets[match.id] = match
    return targets


def _propagation_apply(decision: Decision, targets: dict[int, matching.Match]) -> list[str]:
    """Update the targets a human didn't decide directly and no later decision reached."""
    rows = list(
        Result.objects.select_for_update(of=("self",))
        .filter(id__in=list(targets))
        .exclude(verdict_source=VerdictSource.HUMAN)
        .filter(Q(decision__isnull=True) | Q(decision_id__lt=decision.id))
        .order_by("id")
    )
    if not rows:
        return []
    DecisionTarget.objects.bulk_create(
        [
            DecisionTarget(
                decision=decision,
                result=r,
                task_id=r.task_id,
                distance=targets[r.id].distance,
                matched_by=targets[r.id].matched_by,
                previous_suggestion=r.suggestion,
            )
            for r in rows
        ],
        ignore_conflicts=True,
    )
    Result.objects.filter(id__in=[r.id for r in rows]).update(
        suggestion=decision.suggestion,
        label=decision.label,
        verdict_source=VerdictSource.PROPAGATED,
        reviewed=True,
        decided_by=decision.reviewer,
        decided_at=timezone.now(),
        decision=decision,
        version=F("version") + 1,
    )
    callbacks.callbacks_create(
        decision=decision, result_ids=[r.id for r in rows], event=CallbackEvent.PROPAGATION
    )
    return [r.task_id for r in rows]


def decisions_propagate_pending() -> list[int]:
    """Decisions whose propagation is still pending after a while: their task was lost."""
    cutoff = timezone.now() - PROPAGATION_RESEND_AFTER
    return list(
        Decision.objects.filter(propagation=PropagationState.PENDING, created_at__lt=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:500]
    )
