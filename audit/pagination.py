"""Keyset (cursor) pagination on (created_at, id): a page deep in a million rows costs the
same as the first, because the database seeks to the cursor instead of counting an OFFSET."""

import base64
import json
from datetime import datetime

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param


class Cursor:
    @staticmethod
    def encode(created_at: datetime, pk: int) -> str:
        raw = json.dumps([created_at.isoformat(), pk]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(token: str) -> tuple[datetime, int]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            created_at, pk = json.loads(raw)
            return datetime.fromisoformat(created_at), int(pk)
        except (ValueError, TypeError):
            raise ValueError("Invalid cursor.") from None


def keyset_page(queryset: QuerySet, *, size: int, after: str | None, newest_first: bool) -> list:
    """One page of `queryset` after the `after` cursor, plus one row to tell if more follow."""
    if after:
        created_at, pk = Cursor.decode(after)
        # created_at <= c bounds the index scan; the OR only drops ties already shown.
        if newest_first:
            queryset = queryset.filter(
                Q(created_at__lt=created_at) | Q(id__lt=pk), created_at__lte=created_at
            )
        else:
            queryset = queryset.filter(
                Q(created_at__gt=created_at) | Q(id__gt=pk), created_at__gte=created_at
            )
    order = ("-created_at", "-id") if newest_first else ("created_at", "id")
    return list(queryset.order_by(*order)[: size + 1])


class KeysetPagination(BasePagination):
    page_size = 50
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page_size = self._page_size(request)
        order = request.query_params.get("order", "newest")
        if order not in ("newest", "oldest"):
            raise ValidationError({"order": ["Use newest or oldest."]})
        newest_first = order == "newest"
        try:
            rows = keyset_page(
                queryset,
                size=self.page_size,
                after=request.query_params.get("cursor"),
                newest_first=newest_first,
            )
        except ValueError as error:
            raise ValidationError({"cursor": [str(error)]}) from None
        self.has_next = len(rows) > self.page_size
        self.rows = rows[: self.page_size]
        return self.rows

    def _page_size(self, request) -> int:
        value = request.query_params.get("pageSize")
        if value is None:
            return self.page_size
        if not value.isdigit() or not 1 <= int(value) <= self.max_page_size:
            raise ValidationError({"pageSize": [f"A whole number from 1 to {self.max_page_size}."]})
        return int(value)

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        last = self.rows[-1]
        url = self.request.build_absolute_uri()
        return replace_query_param(url, "cursor", Cursor.encode(last.created_at, last.id))

    def get_paginated_response(self, data):
        return Response({"next": self.get_next_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "The `next` link of the previous page carries it.",
            },
            {
                "name": "pageSize",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
            {
                "name": "order",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": ["newest", "oldest"], "default": "newest"},
            },
        ]
