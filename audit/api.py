from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, permissions, serializers, status
from rest_framework.response import Response

from audit import services
from audit.api_errors import RequestTooLarge
from audit.filters import ResultFilter
from audit.models import Result
from audit.pagination import KeysetPagination
from audit.serializers import IngestedSerializer, IngestSerializer, ResultSerializer

ERROR = inline_serializer(
    "Error",
    {
        "code": serializers.IntegerField(),
        "msg": serializers.CharField(),
        "errors": serializers.DictField(required=False),
    },
)


class ResultPermission(permissions.BasePermission):
    """Reading needs audit.view_result, ingesting audit.add_result."""

    def has_permission(self, request, view) -> bool:
        perm = (
            "audit.view_result"
            if request.method in permissions.SAFE_METHODS
            else "audit.add_result"
        )
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(perm))


def results_queryset():
    return Result.objects.select_related("decided_by")


class ResultListCreate(generics.ListAPIView):
    serializer_class = ResultSerializer
    permission_classes = [ResultPermission]
    filterset_class = ResultFilter
    pagination_class = KeysetPagination

    def get_queryset(self):
        return results_queryset()

    def initial(self, request, *args, **kwargs):
        # Refuse an oversized body before anything reads it.
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.RESULTS_MAX_REQUEST_BYTES:
            raise RequestTooLarge()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        summary="Ingest moderation results",
        description=(
            "Up to 100 items of one content type per request, in the Alibaba Content "
            "Moderation v1 result shape. Idempotent by taskId. All or nothing: one invalid "
            "item stores nothing and the errors come back per item and field. Texts at most "
            "10,000 characters; inline base64 images at most 10 MB and 50 megapixels decoded; "
            "the request body at most RESULTS_MAX_REQUEST_BYTES (32 MB by default, 413 above)."
        ),
        request=IngestSerializer,
        responses={
            201: OpenApiResponse(IngestedSerializer(many=True)),
            400: ERROR,
            413: ERROR,
        },
    )
    def post(self, request):
        incoming = IngestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        ingested = services.results_ingest(
            media_type=incoming.validated_data["type"],
            biz_type=incoming.validated_data["biz_type"],
            items=incoming.validated_data["data"],
        )
        for outcome in ingested:
            outcome.result.created = outcome.created
        data = IngestedSerializer(
            [outcome.result for outcome in ingested], many=True, context={"request": request}
        ).data
        return Response({"code": 201, "msg": "OK", "data": data}, status=status.HTTP_201_CREATED)

    @extend_schema(summary="List results, newest first, with filters and cursor paging")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ResultDetail(generics.RetrieveAPIView):
    serializer_class = ResultSerializer
    permission_classes = [ResultPermission]
    lookup_field = "task_id"
    lookup_url_kwarg = "task_id"

    def get_queryset(self):
        return results_queryset()

    @extend_schema(summary="The current state of one result, with its human decision once made")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
