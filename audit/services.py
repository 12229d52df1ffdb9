"""Every write to the result store goes through here."""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit import fetch, media, tasks
from audit.models import (
    SUGGESTION_SEVERITY,
    Decision,
    DecisionItem,
    DecisionTarget,
    FetchStatus,
    MediaType,
    PropagationState,
    Result,
    ResultFingerprint,
    ResultScene,
    Suggestion,
    VerdictSource,
)
from policies import selectors as policy_selectors
from samples import matching
from samples import services as sample_services

logger = logging.getLogger(__name__)

TASK_ID_PREFIX = {MediaType.IMAGE: "img", MediaType.VIDEO: "vid", MediaType.TEXT: "txt"}
PURGE_BATCH = 5000


@dataclass(frozen=True)
class Ingested:
    result: Result
    created: bool


def worst_scene(scene_results: list[dict]) -> dict:
    """The scene result that decides the item: worst suggestion, then highest rate."""
    return max(scene_results, key=lambda r: (SUGGESTION_SEVERITY[r["suggestion"]], r["rate"]))


def task_id_generate(media_type: str) -> str:
    return TASK_ID_PREFIX[media_type] + uuid.uuid4().hex


def results_ingest(*, media_type: str, biz_type: str, items: list[dict]) -> list[Ingested]:
    """Store validated items (see serializers.IngestSerializer), all or nothing.

    Idempotent by task_id: an item whose task_id is already stored is returned as it is.
    """
    try:
        return _results_ingest_once(media_type=media_type, biz_type=biz_type, items=items)
    except IntegrityError:
        # A concurrent request stored one of our task_ids between our check and insert;
        # the second pass finds it stored and returns it instead.
        return _results_ingest_once(media_type=media_type, biz_type=biz_type, items=items)


def _results_ingest_once(*, media_type, biz_type, items) -> list[Ingested]:
    given = [item["task_id"] for item in items if item.get("task_id")]
    existing = {r.task_id: r for r in Result.objects.filter(task_id__in=given)} if given else {}
    now = timezone.now()
    expires_at = now + timedelta(days=settings.RESULT_RETENTION_DAYS)
    new_rows = []
    outcomes: list[Ingested | Result] = []
    for item in items:
        if (task_id := item.get("task_id")) in existing:
            outcomes.append(Ingested(existing[task_id], created=False))
            continue
        row = _result_build(item, media_type, biz_type, now, expires_at)
        new_rows.append((row, item))
        outcomes.append(row)

    saved_files = []
    try:
        for row, item in new_rows:
            if image := item.get("image"):
                row.file.name = _media_save(row, image.data, image.info.extension)
                saved_files.append(row.file.name)
        with transaction.atomic():
            Result.objects.bulk_create([row for row, _ in new_rows])
            _scenes_insert([row for row, _ in new_rows])
            to_fetch = [row.id for row, _ in new_rows if row.fetch_status == FetchStatus.PENDING]
            # Texts and inline images have their content now (fetched media get fingerprints
            # after the fetch): hashing is the worker's job, not the request's.
            to_hash = [row.id for row, _ in new_rows if row.text or row.file]
            if to_fetch or to_hash:
                # One message per request; robust: the rows are committed, and a broker that
                # is down must not turn that into an error (the stale-fetch job resends).
                transaction.on_commit(
                    lambda: tasks.results_arrived.delay(to_fetch, to_hash), robust=True
                )
    except Exception:
        for name in saved_files:
            default_storage.delete(name)
        raise
    return [o if isinstance(o, Ingested) else Ingested(o, created=True) for o in outcomes]


def _scenes_insert(results: list[Result]) -> None:
    # One multi-row INSERT of plain values: building a model instance per scene row cost a
    # quarter of the ingest time (benchmarks/ingest.py). At most 100 items x 20 scenes.
    rows = [
        (result.id, r["scene"], r["label"], r["suggestion"], r["rate"])
        for result in results
        for r in result.scene_results
    ]
    if not rows:
        return
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    sql = (
        f"INSERT INTO {ResultScene._meta.db_table} "  # noqa: S608 - no user text in the SQL
        f"(result_id, scene, label, suggestion, rate) VALUES {values}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


def _result_build(item, media_type, biz_type, now, expires_at) -> Result:
    scene_results = item["results"]
    worst = worst_scene(scene_results)
    row = Result(
        media_type=media_type,
        task_id=item.get("task_id") or task_id_generate(media_type),
        data_id=item.get("data_id", ""),
        biz_type=biz_type,
        url=item.get("url", ""),
        text=item.get("text", ""),
        scene_results=scene_results,
        frames=item.get("frames", []),
        machine_suggestion=worst["suggestion"],
        machine_label=worst["label"],
        suggestion=worst["suggestion"],
        label=worst["label"],
        created_at=now,
        expires_at=expires_at,
    )
    if image := item.get("image"):
        row.content_format = image.info.format
        row.width, row.height = image.info.width, image.info.height
        row.fetch_status = FetchStatus.DONE
    elif row.url and media_type != MediaType.TEXT:
        row.fetch_status = FetchStatus.PENDING
    return row


def _media_save(result: Result, data: bytes, extension: str) -> str:
    name = f"results/{result.created_at:%Y/%m/%d}/{result.task_id}.{extension}"
    return default_storage.save(name, ContentFile(data))


# Fetching image and video URLs ------------------------------------------------------------


class FetchRetry(Exception):
    """A transient fetch failure that is worth another attempt later."""


def result_fetch(*, result_id: int) -> None:
    """Download, check and store the media of one result. Safe to run twice.

    Raises FetchRetry when the failure was transient and attempts remain.
    """
    result = Result.objects.filter(id=result_id, fetch_status=FetchStatus.PENDING).first()
    if result is None:
        return
    attempts = result.fetch_attempts + 1
    try:
        stored = _media_fetch_and_store(result)
    except (fetch.FetchError, media.MediaError) as error:
        transient = getattr(error, "transient", False)
        retry = transient and attempts < settings.FETCH_MAX_ATTEMPTS
        Result.objects.filter(id=result.id, fetch_status=FetchStatus.PENDING).update(
            fetch_status=FetchStatus.PENDING if retry else FetchStatus.FAILED,
            fetch_error=str(error)[:500],
            fetch_attempts=attempts,
        )
        logger.info("fetch of result %s failed (%s): %s", result.id, attempts, error)
        if retry:
            raise FetchRetry(str(error)) from error
        return
    updated = Result.objects.filter(id=result.id, fetch_status=FetchStatus.PENDING).update(
        fetch_status=FetchStatus.DONE, fetch_error="", fetch_attempts=attempts, **stored
    )
    if not updated:  # another run finished first and stored its own copy
        default_storage.delete(stored["file"])
        return
    results_fingerprint(result_ids=[result.id])


def _media_fetch_and_store(result: Result) -> dict:
    is_image = result.media_type == MediaType.IMAGE
    fetched = fetch.fetch_url(
        result.url,
        max_bytes=settings.RESULTS_MAX_IMAGE_BYTES
        if is_image
        else settings.RESULTS_MAX_VIDEO_BYTES,
        timeout=settings.FETCH_TIMEOUT_SECONDS,
        allowed_content_types=media.IMAGE_CONTENT_TYPES if is_image else media.VIDEO_CONTENT_TYPES,
        max_redirects=settings.FETCH_MAX_REDIRECTS,
        allowed_networks=settings.FETCH_ALLOWED_NETWORKS,
    )
    if is_image:
        info = media.image_inspect(fetched.content, max_pixels=settings.RESULTS_MAX_IMAGE_PIXELS)
        name = _media_save(result, fetched.content, info.extension)
        return {
            "file": name,
            "content_format": info.format,
            "width": info.width,
            "height": info.height,
        }
    return _video_store(result, fetched.content)


def _video_store(result: Result, data: bytes) -> dict:
    # PyAV reads a local file only; it is stored under a neutral name and checked there.
    name = _media_save(result, data, "bin")
    try:
        info = media.video_inspect(
            default_storage.path(name), max_pixels=settings.RESULTS_MAX_IMAGE_PIXELS
        )
    except media.MediaError:
        default_storage.delete(name)
        raise
    final = _media_save(result, data, info.extension)
    default_storage.delete(name)
    return {
        "file": final,
        "content_format": info.extension,
        "width": info.width,
        "height": info.height,
        "duration": info.duration,
    }


def results_fetch_stale(*, older_than: timedelta = timedelta(minutes=10)) -> list[int]:
    """Ids of results whose fetch is still pending after a while: the broker may have lost
    their task (Redis here keeps nothing on disk), so they are sent again."""
    cutoff = timezone.now() - older_than
    return list(
        Result.objects.filter(fetch_status=FetchStatus.PENDING, created_at__lt=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )


# Retention ---------------------------------------------------------------------------------


def results_purge(*, now: datetime | None = None) -> int:
    """Delete expired results in batches; their own media files go with them."""
    now = now or timezone.now()
    removed = 0
    while True:
        batch = list(
            Result.objects.filter(expires_at__lte=now)
            .order_by("id")
            .values_list("id", "file")[:PURGE_BATCH]
        )
        if not batch:
            break
        with transaction.atomic():
            Result.objects.filter(id__in=[i for i, _ in batch]).delete()
        for _, name in batch:
            # Demo rows share files under demo/; only a result's own upload is removed.
            if name and name.startswith("results/"):
                default_storage.delete(name)
        removed += len(batch)
    logger.info("purged %s expired results", removed)
    return removed


# Decisions ---------------------------------------------------------------------------------

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


# Propagation: a decision teaches similar results and the sample libraries ------------------

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
    return [r.task_id for r in rows]


def fingerprints_ensure(result: Result) -> None:
    """Compute a result's fingerprints if it has none yet (and its media is there)."""
    if result.fingerprints.exists():
        return
    try:
        rows = matching.result_rows(result)
    except media.MediaError as error:
        logger.warning("result %s: no fingerprints: %s", result.id, error)
        return
    ResultFingerprint.objects.bulk_create(ResultFingerprint(result=result, **row) for row in rows)


def results_fingerprint(*, result_ids: list[int]) -> None:
    for result in Result.objects.filter(id__in=result_ids):
        with transaction.atomic():
            fingerprints_ensure(result)


def results_fingerprint_missing(*, batch: int = 2000) -> int:
    """Fingerprint every result that has none (a backfill, and seed_demo's demo data).

    Results that share a file or a text are hashed once.
    """
    done, cache = 0, {}
    last_id = 0
    while True:
        results = list(
            Result.objects.filter(id__gt=last_id, fingerprints__isnull=True)
            .order_by("id")
            .only("id", "media_type", "file", "text")[:batch]
        )
        if not results:
            return done
        rows = []
        for result in results:
            key = (result.media_type, result.file.name or "", result.text)
            if key not in cache:
                try:
                    cache[key] = matching.result_rows(result)
                except media.MediaError:
                    cache[key] = []
            rows += [ResultFingerprint(result=result, **row) for row in cache[key]]
        ResultFingerprint.objects.bulk_create(rows, batch_size=5000)
        done += len(results)
        last_id = results[-1].id


def decisions_propagate_pending() -> list[int]:
    """Decisions whose propagation is still pending after a while: their task was lost."""
    cutoff = timezone.now() - PROPAGATION_RESEND_AFTER
    return list(
        Decision.objects.filter(propagation=PropagationState.PENDING, created_at__lt=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:500]
    )
