"""Reads of the result store beyond a plain get."""

from django.db.models import Count, Q

from audit.models import MediaType, Result


def result_counts() -> dict[str, dict[str, int]]:
    """Stored and unreviewed results per content type."""
    rows = Result.objects.values("media_type").annotate(
        total=Count("id"), unreviewed=Count("id", filter=Q(reviewed=False))
    )
    counts = {t: {"total": 0, "unreviewed": 0} for t in MediaType.values}
    for row in rows:
        counts[row["media_type"]] = {"total": row["total"], "unreviewed": row["unreviewed"]}
    return counts
