import uuid

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, permissions, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import scanning, selectors, services
from audit.api_errors import RequestTooLarge
from audit.filters import ResultFilter
from audit.models import DecisionChannel, MediaType, Result
from audit.pagination import KeysetPagination
from audit.serializers import (
    IngestedSerializer,
    IngestSerializer,
    MarkResultSerializer,
    MarkSerializer,
    ResultSerializer,
    ScanSerializer,
)

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

    @extend_schema(
        summary="The current state of one result, with its human decision once made",
        responses={
            200: ResultSerializer,
            404: OpenApiResponse(description="No result was ever stored under this taskId."),
            410: OpenApiResponse(
                description="The result expired and was purged: {code, msg, expiredAt}."
            ),
        },
    )
    def get(self, request, *args, **kwargs):
        try:
            return super().get(request, *args, **kwargs)
        except Http404:
            stub = selectors.result_stub_expired(kwargs["task_id"])
            if stub is None:
                raise
        expired_at = serializers.DateTimeField().to_representation(stub.expires_at)
        return Response(
            {
                "code": 410,
                "msg": f"The result expired at {expired_at} and was removed from the store.",
                "expiredAt": expired_at,
            },
            status=status.HTTP_410_GONE,
        )


class CanDecide(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm("audit.add_decision"))


class ResultMark(APIView):
    permission_classes = [permissions.IsAuthenticated, CanDecide]

    @extend_schema(
        summary="Pass or block results (a human decision)",
        description=(
            "One decision on up to 500 results, in one transaction. Items someone already "
            "decided (see `versions`) are not overwritten: they come back in `conflicts`. "
            "409 when every item was a conflict."
        ),
        request=MarkSerializer,
        responses={200: MarkResultSerializer, 400: ERROR, 409: MarkResultSerializer},
    )
    def post(self, request):
        incoming = MarkSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        try:
            outcome = services.decision_record(
                reviewer=request.user,
                task_ids=data["taskIds"],
                suggestion=data["suggestion"],
                label=data.get("label", ""),
                note=data.get("note", ""),
                channel=DecisionChannel.API,
                versions=data.get("versions"),
            )
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from None
        ok = outcome.decision is not None
        body = {
            "code": 200 if ok else 409,
            "msg": "OK" if ok else "Every item was already decided by someone else.",
            "decisionId": outcome.decision.id if ok else None,
            "decided": outcome.decided,
            "conflicts": outcome.conflicts,
        }
        data = MarkResultSerializer(body, context={"request": request}).data
        return Response(data, status=status.HTTP_200_OK if ok else status.HTTP_409_CONFLICT)


class ScanPermission(permissions.BasePermission):
    """Scanning stores results: it needs audit.add_result."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm("audit.add_result"))


class ResultScan(APIView):
    permission_classes = [permissions.IsAuthenticated, ScanPermission]

    @extend_schema(
        summary="Moderate images, texts or videos (Alibaba v1 scan shape)",
        description=(
            "`type` is image, text or video. Each task is answered from the sample libraries "
            "first (a block sample answers block with the label `customized`; a pass sample, "
            "pass), otherwise from `results` an upstream engine sent along, otherwise by the "
            "keyword library (texts) or `review` (images and videos: no built-in model). "
            "Every task is stored like an ingested result; items to review reach the Audit "
            "page. Image URLs are fetched in the request with the same guards as ingest."
        ),
        request=ScanSerializer,
        responses={
            200: OpenApiResponse(description="v1: {code, msg, requestId, data[]}"),
            400: ERROR,
        },
    )
    def post(self, request, media_type: str):
        if media_type not in MediaType.values:
            raise NotFound("Scan image, text or video.")
        incoming = ScanSerializer(data=request.data, context={"media_type": media_type})
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        scanned = scanning.results_scan(
            media_type=media_type,
            biz_type=data["biz_type"],
            scenes=data["scenes"],
            items=data["tasks"],
        )
        return Response(
            {
                "code": 200,
                "msg": "OK",
                "requestId": uuid.uuid4().hex,
                "data": [_scan_answer(s) for s in scanned],
            }
        )


def _scan_answer(scanned: scanning.Scanned) -> dict:
    if scanned.result is None:
        return {"code": 400, "msg": scanned.error, "dataId": scanned.data_id}
    result = scanned.result
    answer = {
        "code": 200,
        "msg": "OK",
        "dataId": result.data_id,
        "taskId": result.task_id,
        "results": result.scene_results,
    }
    if result.url:
        answer["url"] = result.url
    if result.media_type == MediaType.TEXT:
        answer["content"] = result.text
    return answer
