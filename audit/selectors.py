"""Reads of the result store beyond a plain get."""

from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from audit.models import (
    DecisionItem,
    DecisionTarget,
    MediaType,
    Result,
    ResultScene,
    ResultStub,
    Suggestion,
    VerdictSource,
)
from audit.pagination import Cursor, keyset_page
from policies import selectors as policy_selectors

QUEUE_COUNTS_TTL = 30  # seconds: tab counts are a guide, the queue itself is always live
# A keyword filter tests each text in Python (the engine's normalization has no SQL form):
# the newest this many flagged texts of the other filters are looked at.
KEYWORD_FILTER_LIMIT = 5000


@dataclass(frozen=True)
class QueuePage:
    items: list[Result]
    next_cursor: str | None


def result_counts() -> dict[str, dict[str, int]]:
    """Stored and unreviewed results per content type."""
    rows = Result.objects.values("media_type").annotate(
        total=Count("id"), unreviewed=Count("id", filter=Q(reviewed=False))
    )
    counts = {t: {"total": 0, "unreviewed": 0} for t in MediaType.values}
    for row in rows:
        counts[row["media_type"]] = {"total": row["total"], "unreviewed": row["unreviewed"]}
    return counts


def audit_range_q(media_type: str) -> Q:
    """Results whose machine suggestion the policy of their biz type puts on the Audit page."""
    default_range, others = policy_selectors.audit_ranges(media_type)
    q = Q(machine_suggestion__in=default_range)
    if others:
        q &= ~Q(biz_type__in=list(others))
        for biz_type, suggestions in others.items():
            q |= Q(biz_type=biz_type, machine_suggestion__in=suggestions)
    return q


def result_queue(*, filters: dict, size: int = 48) -> QueuePage:
    """One page of the Audit queue for `filters` (QueueFilterForm.cleaned_data)."""
    queryset = _queue_queryset(filters).select_related("decided_by")
    rows = keyset_page(
        queryset,
        size=size,
        after=filters.get("cursor") or None,
        newest_first=filters["order"] == "newest",
    )
    items = rows[:size]
    more = len(rows) > size
    next_cursor = Cursor.encode(items[-1].created_at, items[-1].id) if more else None
    return QueuePage(items=items, next_cursor=next_cursor)


def result_queue_queryset(*, filters: dict) -> QuerySet:
    """The Audit queue's rows for `filters`, unordered and unpaged: for protocols that page
    by number (green.console's DescribeAuditContent)."""
    return _queue_queryset(filters)


def _queue_queryset(f: dict) -> QuerySet:
    media_type = f["type"]
    qs = Result.objects.filter(audit_range_q(media_type), media_type=media_type)
    if f["status"] != "all":
        qs = qs.filter(reviewed=f["status"] == "reviewed")
    exact = {
        "suggestion__in": f.get("suggestion"),
        "verdict_source": f.get("source"),
        "decided_by__username": f.get("reviewer"),
        "task_id": f.get("task_id"),
        "data_id": f.get("data_id"),
        "biz_type": f.get("biz_type"),
        "created_at__gte": f.get("date_from"),
        "created_at__lte": f.get("date_to"),
    }
    qs = qs.filter(**{key: value for key, value in exact.items() if value})
    if f.get("expiring"):
        qs = qs.filter(expires_at__lt=timezone.now() + timedelta(hours=24))
    if f.get("scene") or f.get("label"):
        match = {"result": OuterRef("pk")}
        if f.get("scene"):
            match["scene"] = f["scene"]
        if f.get("label"):
            match["label"] = f["label"]
        qs = qs.filter(Exists(ResultScene.objects.filter(**match)))
    if f.get("library"):  # answered by a sample library of that verdict
        qs = qs.filter(verdict_source=VerdictSource.LIBRARY, suggestion=f["library"])
    if f.get("sample") is not None:
        qs = qs.filter(id__in=results_answered_by(f["sample"]))
    if f.get("keyword") is not None:
        qs = qs.filter(id__in=_keyword_hits(qs, f["keyword"]))
    return qs


def results_answered_by(sample) -> list[int]:
    """Results the sample libraries answered with `sample`: stored results that match it as
    scanning matches (samples.matching) and took their verdict from a sample of its library.
    (A result records the library's verdict, not which sample gave it.)"""
    from samples import matching

    library = sample.library
    rows = list(sample.fingerprints.all())
    query = None
    if sample.media_type == MediaType.IMAGE and sample.file:
        query = matching.image_crop_query(sample.file.name)
    found = matching.similar(
        matching.RESULTS, sample.media_type, rows, sample.text, fresh=True, crop_query=query
    )
    answered = Result.objects.filter(
        id__in=list(found),
        media_type=sample.media_type,
        verdict_source=VerdictSource.LIBRARY,
        suggestion=library.suggestion,
        label=library.label or "normal",
    )
    return list(answered.values_list("id", flat=True))


def _keyword_hits(queryset: QuerySet, keyword) -> list[int]:
    """Flagged texts of `queryset` that contain `keyword` as the keyword engine matches it
    (samples.keywords: normalized text containing the normalized keyword)."""
    from samples import fingerprints, keywords

    word = fingerprints.text_normalize(keyword.text)
    texts = (
        queryset.filter(media_type=MediaType.TEXT)
        .exclude(machine_suggestion=Suggestion.PASS)
        .order_by("-created_at", "-id")
        .values_list("id", "text")[:KEYWORD_FILTER_LIMIT]
    )
    return [i for i, text in texts if keywords.keyword_in(word, fingerprints.text_normalize(text))]


def queue_counts() -> dict[str, int]:
    """Unreviewed results in the audit range per content type ("image"), and how many of
    them expire before the day is over ("image:expiring"), cached briefly: a COUNT over a
    million rows is too slow to run on every page load."""
    counts = cache.get("audit:queue-counts")
    if counts is None:
        midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        end_of_today = midnight + timedelta(days=1)
        counts = {}
        for t in MediaType.values:
            queue = Result.objects.filter(audit_range_q(t), media_type=t, reviewed=False)
            counts[t] = queue.count()
            counts[f"{t}:expiring"] = queue.filter(expires_at__lt=end_of_today).count()
        cache.set("audit:queue-counts", counts, QUEUE_COUNTS_TTL)
    return counts


def result_history(result: Result) -> list[DecisionItem]:
    """The decisions made on a result, newest first."""
    return decisions_on_task(result.task_id)


def decisions_on_task(task_id: str) -> list[DecisionItem]:
    """The decisions made on a task id, newest first; they outlive the result itself."""
    return list(
        DecisionItem.objects.filter(task_id=task_id)
        .select_related("decision__reviewer")
        .order_by("-decision__created_at", "-id")
    )


def result_similar(result: Result, limit: int = 50) -> list[tuple[Result, object]]:
    """The results a decision on `result` would reach, with how each matched (a preview for
    the detail page; the propagation runs the same matcher)."""
    from samples import matching

    if not result.fingerprints.exists():
        return []
    matches = matching.results_similar(result)[:limit]
    rows = Result.objects.select_related("decided_by").in_bulk([m.id for m in matches])
    return [(rows[m.id], m) for m in matches if m.id in rows]


def result_touched(result: Result) -> list[DecisionTarget]:
    """What the decisions made on `result` changed by propagation."""
    return list(
        DecisionTarget.objects.filter(decision__items__task_id=result.task_id)
        .select_related("decision")
        .order_by("-decision_id", "task_id")[:200]
    )


def result_stub_expired(task_id: str) -> ResultStub | None:
    """The stub of a result under `task_id` that expired (and was, or is about to be, purged),
    if no live result has that task id."""
    if Result.objects.filter(task_id=task_id).exists():
        return None
    return (
        ResultStub.objects.filter(task_id=task_id, expires_at__lte=timezone.now())
        .order_by("-expires_at")
        .first()
    )
