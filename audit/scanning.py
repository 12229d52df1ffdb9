"""The moderation API (POST /api/v1/scan/<type>): every item is answered from the sample
libraries first, where human decisions live, else by the engine (results an upstream engine
sent along, or the keyword library for texts), and stored like an ingested result."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from audit import fetch, media, services
from audit.models import MediaType, Result, ResultFingerprint, Suggestion, VerdictSource
from audit.serializers import InlineImage
from samples import keywords, matching
from samples.models import Sample

logger = logging.getLogger(__name__)

LIBRARY_LABEL = "customized"  # what Alibaba's API answers for a custom-library hit
# The scene a block category is reported under, when the client asked for it.
CATEGORY_SCENE = {"porn": "porn", "terrorism": "terrorism", "ad": "ad"}


@dataclass
class Scanned:
    data_id: str
    result: Result | None
    error: str = ""
    # Why it failed, for protocols with their own codes: a FetchError's code, or "bad_media".
    error_code: str = ""
    # Worth another attempt: the fetch timed out, could not connect or resolve, or the server
    # answered 5xx or 429 (audit.fetch decides).
    transient: bool = False


def results_scan(
    *,
    media_type: str,
    biz_type: str,
    scenes: list[str],
    items: list[dict],
    after_store: Callable[[list[Result]], None] | None = None,
):
    """Answer and store validated scan tasks (see serializers.ScanSerializer).

    `after_store(results)` runs inside the transaction that stores them (after any media
    fetch, which happens outside it), for writes that must commit or roll back with them.
    """
    prepared, errors = [], {}
    for index, item in enumerate(items):
        try:
            prepared.append(_prepare(media_type, scenes, item))
        except (fetch.FetchError, media.MediaError) as error:
            errors[index] = error
    stored = iter(_store(media_type, biz_type, prepared, after_store) if prepared else [])
    return [
        Scanned(
            item.get("data_id", ""),
            None,
            str(errors[i]),
            _error_code(errors[i]),
            transient=getattr(errors[i], "transient", False),
        )
        if i in errors
        else Scanned(item.get("data_id", ""), next(stored))
        for i, item in enumerate(items)
    ]


def _error_code(error: Exception) -> str:
    return error.code if isinstance(error, fetch.FetchError) else "bad_media"


def _prepare(media_type: str, scenes: list[str], item: dict) -> dict:
    if media_type == MediaType.IMAGE and "image" not in item:
        item["image"] = _image_fetch(item["url"])
    rows = []
    if media_type == MediaType.IMAGE:
        rows = matching.image_rows(item["image"].data)
    elif media_type == MediaType.TEXT:
        rows = matching.text_rows(item["text"])
    sample = _library_match(media_type, rows, item.get("text", "")) if rows else None
    item["fingerprint_rows"] = rows
    item["sample"] = sample
    if sample is not None:
        item["results"] = _library_results(sample, scenes)
    elif not item.get("results"):
        item["results"] = _engine_results(media_type, scenes, item)
    return item


def _image_fetch(url: str) -> InlineImage:
    fetched = fetch.fetch_url(
        url,
        max_bytes=settings.RESULTS_MAX_IMAGE_BYTES,
        timeout=settings.FETCH_TIMEOUT_SECONDS,
        allowed_content_types=media.IMAGE_CONTENT_TYPES,
        max_redirects=settings.FETCH_MAX_REDIRECTS,
        allowed_networks=settings.FETCH_ALLOWED_NETWORKS,
    )
    info = media.image_inspect(fetched.content, max_pixels=settings.RESULTS_MAX_IMAGE_PIXELS)
    return InlineImage(data=fetched.content, info=info)


def _library_match(media_type: str, rows: list[dict], text: str) -> Sample | None:
    """The closest enabled sample, a block one winning a tie with a pass one."""
    # fresh: a decision made a moment ago must already answer (one cheap query on the ids).
    found = matching.similar(matching.samples_store(), media_type, rows, text, fresh=True)
    if not found:
        return None
    samples = Sample.objects.filter(
        id__in=list(found), enabled=True, library__enabled=True, media_type=media_type
    ).select_related("library")
    ranked = sorted(
        samples,
        key=lambda s: (found[s.id].distance, s.library.suggestion != Suggestion.BLOCK, -s.id),
    )
    return ranked[0] if ranked else None


def _library_results(sample: Sample, scenes: list[str]) -> list[dict]:
    library = sample.library
    if library.suggestion == Suggestion.PASS:
        return [_scene(s, LIBRARY_LABEL, Suggestion.PASS) for s in scenes]
    blocked = CATEGORY_SCENE.get(library.label)
    blocked = blocked if blocked in scenes else scenes[0]
    return [
        _scene(s, LIBRARY_LABEL, Suggestion.BLOCK)
        if s == blocked
        else _scene(s, "normal", Suggestion.PASS)
        for s in scenes
    ]


def _engine_results(media_type: str, scenes: list[str], item: dict) -> list[dict]:
    if media_type == MediaType.TEXT:
        return keywords.keyword_results(item["text"])
    # No built-in model for images and videos: without an upstream verdict a human looks.
    return [_scene(s, "unknown", Suggestion.REVIEW, 0.0) for s in scenes]


def _scene(scene: str, label: str, suggestion: str, rate: float = 100.0) -> dict:
    return {"scene": scene, "label": label, "suggestion": suggestion, "rate": rate}


@transaction.atomic
def _store(media_type: str, biz_type: str, items: list[dict], after_store) -> list[Result]:
    ingested = services.results_ingest(media_type=media_type, biz_type=biz_type, items=items)
    results = []
    for item, outcome in zip(items, ingested, strict=True):
        result = outcome.result
        if outcome.created and item["fingerprint_rows"]:
            ResultFingerprint.objects.bulk_create(
                ResultFingerprint(result=result, **row) for row in item["fingerprint_rows"]
            )
        if outcome.created and (sample := item["sample"]) is not None:
            _verdict_from_library(result, sample)
        results.append(result)
    if after_store is not None:
        after_store(results)
    return results


def _verdict_from_library(result: Result, sample: Sample) -> None:
    """A library hit is a human verdict taught earlier: decided, nothing left to review."""
    library = sample.library
    result.label = library.label or "normal"
    result.verdict_source = VerdictSource.LIBRARY
    result.reviewed = True
    result.decision_id = sample.decision_id
    Result.objects.filter(id=result.id).update(
        label=result.label,
        verdict_source=result.verdict_source,
        reviewed=True,
        decision_id=sample.decision_id,
    )
