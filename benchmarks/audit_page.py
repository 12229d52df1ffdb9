"""Server time of the Audit list at depth, against a default Django admin changelist.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \
        .venv/bin/python benchmarks/audit_page.py --ensure-rows 1000000

Four Audit pages (the image tab: the default filter, then two extra filters, biz type and
scene; each on page 1 and page 1000 reached by the keyset cursor), side by side with a plain
ModelAdmin changelist (OFFSET paging, exact COUNT) over the same rows, in the same order, at
the same depth and page size. Each figure is the median of full requests through Django's
test client (middleware, session, queries, template), in-process.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

from django.contrib import admin  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402

from audit import views  # noqa: E402
from audit.forms import QueueFilterForm  # noqa: E402
from audit.models import Result  # noqa: E402
from audit.pagination import Cursor  # noqa: E402
from audit.selectors import _queue_queryset  # noqa: E402
from audit.tests.factories import user_in  # noqa: E402
from benchmarks.common import ensure_rows, median_ms, timed  # noqa: E402

PAGE = views.QUEUE_PAGE_SIZE
FILTERS = {
    "default filter": {"type": "image"},
    "+ bizType, scene": {"type": "image", "biz_type": "default", "scene": "porn"},
}


class PlainResultAdmin(admin.ModelAdmin):
    """What Django gives out of the box: OFFSET pages and an exact COUNT for the paginator."""

    list_display = (
        "task_id",
        "media_type",
        "biz_type",
        "machine_suggestion",
        "suggestion",
        "label",
        "created_at",
    )
    list_per_page = PAGE
    ordering = ("created_at", "id")  # the Audit queue's order

    def lookup_allowed(self, lookup, value, request=None):
        return True  # let the query string carry the same filters as the Audit page


plain_site = admin.AdminSite(name="plain")
plain_site.register(Result, PlainResultAdmin)
urlpatterns = [
    path("plain-admin/", plain_site.urls),
    path("", include("moderation_console.urls")),
]


def admin_query(filters: dict) -> str:
    query = "media_type=image&reviewed__exact=0&machine_suggestion__in=review,block"
    if "biz_type" in filters:
        query += f"&biz_type={filters['biz_type']}&scenes__scene={filters['scene']}"
    return query


def cursor_at(filters: dict, depth: int) -> str:
    """The keyset cursor a reviewer holds after paging through `depth` pages (untimed)."""
    form = QueueFilterForm(filters)
    assert form.is_valid(), form.errors
    last = _queue_queryset(form.cleaned_data).order_by("created_at", "id")[
        depth * PAGE - 1 : depth * PAGE
    ]
    row = last.values_list("created_at", "id").get()
    return Cursor.encode(*row)


def run(*, ensure: int, depth: int, repeat: int) -> dict:
    rows = ensure_rows(ensure)
    print(
        f"{connection.vendor}, {rows} results stored; page size {PAGE}, page {depth} is "
        f"{(depth - 1) * PAGE:,} rows deep; median of {repeat} requests"
    )
    user = get_user_model().objects.filter(username="bench-admin").first()
    if user is None:
        user = user_in("Admin", username="bench-admin", is_staff=True, is_superuser=True)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    figures = {}
    with override_settings(ROOT_URLCONF=__name__):
        for name, filters in FILTERS.items():
            query = "&".join(f"{k}={v}" for k, v in filters.items())
            deep = cursor_at(filters, depth - 1)
            pages = {
                "audit p1": f"/audit/?{query}",
                f"audit p{depth}": f"/audit/?{query}&cursor={deep}",
                "admin p1": f"/plain-admin/audit/result/?{admin_query(filters)}",
                f"admin p{depth}": f"/plain-admin/audit/result/?{admin_query(filters)}&p={depth}",
            }
            for label, url in pages.items():
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
                figures[(name, label)] = median_ms(timed(lambda u=url: client.get(u), repeat))
    report(figures, depth)
    return figures


def report(figures: dict, depth: int) -> None:
    for name in FILTERS:
        audit1, audit_deep = figures[(name, "audit p1")], figures[(name, f"audit p{depth}")]
        admin1, admin_deep = figures[(name, "admin p1")], figures[(name, f"admin p{depth}")]
        print(f"{name}:")
        print(
            f"  Audit page 1        {audit1:7.1f} ms   admin changelist page 1     "
            f"{admin1:7.1f} ms   ({admin1 / audit1:5.1f}x)"
        )
        print(
            f"  Audit page {depth:<8} {audit_deep:7.1f} ms   admin changelist page {depth:<5} "
            f"{admin_deep:7.1f} ms   ({admin_deep / audit_deep:5.1f}x)"
        )
    worst = max(v for (_, label), v in figures.items() if label.startswith("audit"))
    ratio = min(figures[(n, f"admin p{depth}")] / figures[(n, f"audit p{depth}")] for n in FILTERS)
    print(
        f"slowest Audit page {worst:.1f} ms (target <= 30 ms); at depth the Audit page is "
        f"{ratio:.1f}x faster than the admin changelist at least (target >= 10x)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ensure-rows", type=int, default=1_000_000)
    parser.add_argument("--depth", type=int, default=1000, help="the deep page's number")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    run(ensure=args.ensure_rows, depth=args.depth, repeat=args.repeat)


if __name__ == "__main__":
    main()
