"""A paginator for admin changelists over millions of rows."""

import json
from functools import cached_property

from django.core.paginator import Paginator
from django.db import connections

# Below this many rows (by the planner's estimate) an exact COUNT is cheap enough.
EXACT_COUNT_LIMIT = 20_000


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL, large counts come from the planner's estimate instead of COUNT(*),
    which reads every matching row; the admin only needs it for the page links."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return super().count
        estimate = _planner_rows(queryset, connection)
        return estimate if estimate > EXACT_COUNT_LIMIT else super().count


def _planner_rows(queryset, connection) -> int:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])
