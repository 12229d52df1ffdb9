"""Writes to the sample libraries."""

from pathlib import PurePosixPath

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from audit.models import Decision, MediaType, Result, Suggestion
from samples import matching
from samples.models import (
    Sample,
    SampleEvent,
    SampleFingerprint,
    SampleLibrary,
    SampleOrigin,
)


def library_for(media_type: str, suggestion: str, label: str) -> SampleLibrary:
    library, _ = SampleLibrary.objects.get_or_create(
        media_type=media_type,
        suggestion=suggestion,
        label=label if suggestion == Suggestion.BLOCK else "",
    )
    return library


def sample_learn(*, result: Result, decision: Decision) -> dict | None:
    """Teach the libraries a decided image or text (never a video). Caller holds the
    transaction. Returns what happened, or None when there is nothing to learn from (a video,
    or media not fetched)."""
    if result.media_type == MediaType.VIDEO:
        return None
    rows = [matching.row_as_dict(r) for r in result.fingerprints.all()]
    if not rows:
        return None
    image = None
    if result.file:
        with default_storage.open(result.file.name, "rb") as source:
            image = (source.read(), PurePosixPath(result.file.name).suffix)
        if result.media_type == MediaType.IMAGE:
            rows = matching.with_crop_query(rows, image[0])
    sample, action = sample_add(
        media_type=result.media_type,
        suggestion=decision.suggestion,
        label=decision.label,
        rows=rows,
        text=result.text,
        image=image,
        decision=decision,
        task_id=result.task_id,
    )
    return {"sample": sample.id, "action": action, "task_id": result.task_id}


@transaction.atomic
def sample_add(
    *,
    media_type: str,
    suggestion: str,
    label: str,
    rows: list[dict],
    text: str = "",
    image: tuple[bytes, str] | None = None,
    decision: Decision | None = None,
    user=None,
    task_id: str = "",
) -> tuple[Sample, str]:
    """Add an image or text to the library of its verdict, or link it to a sample there that
    it nearly copies ("linked"): a library holds no near-copies. Similar samples that say
    otherwise are disabled: the latest human word is the one to answer with.

    `rows` are its fingerprint rows (samples.matching); `image` is (bytes, ".ext").
    """
    library = library_for(media_type, suggestion, label)
    similar = matching.similar(matching.samples_store(), media_type, rows, text, fresh=True)
    nearby = Sample.objects.filter(id__in=list(similar), enabled=True).select_related("library")
    _samples_overruled([s for s in nearby if s.library_id != library.id], decision, user)
    same = [s for s in nearby if s.library_id == library.id]
    if same:
        sample = min(same, key=lambda s: similar[s.id].distance)
        if task_id:
            SampleOrigin.objects.get_or_create(
                sample=sample,
                task_id=task_id,
                defaults={"decision": decision, "distance": similar[sample.id].distance},
            )
        _event(sample, SampleEvent.Action.LINKED, decision=decision, user=user)
        return sample, "linked"
    sample = Sample.objects.create(
        library=library, media_type=media_type, text=text, decision=decision, task_id=task_id
    )
    if image is not None:
        # The sample keeps a copy of its own: the result's file goes with the 7-day purge.
        data, suffix = image
        sample.file.name = default_storage.save(f"samples/{sample.id}{suffix}", ContentFile(data))
        sample.save(update_fields=["file"])
    SampleFingerprint.objects.bulk_create(SampleFingerprint(sample=sample, **row) for row in rows)
    if task_id:
        SampleOrigin.objects.create(sample=sample, decision=decision, task_id=task_id)
    _event(sample, SampleEvent.Action.ADDED, decision=decision, user=user)
    return sample, "added"


def _samples_overruled(samples: list[Sample], decision: Decision | None, user) -> None:
    for sample in samples:
        sample.enabled = False
        sample.save(update_fields=["enabled"])
        _event(sample, SampleEvent.Action.DISABLED, decision=decision, user=user)


def sample_set_enabled(*, sample: Sample, enabled: bool, user) -> Sample:
    if sample.enabled != enabled:
        sample.enabled = enabled
        sample.save(update_fields=["enabled"])
        action = SampleEvent.Action.ENABLED if enabled else SampleEvent.Action.DISABLED
        _event(sample, action, user=user)
    return sample


def sample_remove(*, sample: Sample, user) -> None:
    _event(sample, SampleEvent.Action.REMOVED, user=user)
    name = sample.file.name
    sample.delete()
    if name:  # only once the removal is committed
        transaction.on_commit(lambda: default_storage.delete(name))


def _event(sample: Sample, action: str, *, decision=None, user=None) -> None:
    SampleEvent.objects.create(
        sample_id_value=sample.id,
        library_id=sample.library_id,
        action=action,
        decision=decision,
        user=user or (decision.reviewer if decision else None),
    )
