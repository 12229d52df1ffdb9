from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import fetch, media, scanning
from samples import matching, services
from samples.models import Sample, SampleLibrary
from samples.serializers import (
    SampleCreateSerializer,
    SampleLibrarySerializer,
    SampleSerializer,
    SampleUpdateSerializer,
)

PERMS = {
    "GET": "samples.view_sample",
    "POST": "samples.add_sample",
    "PATCH": "samples.change_sample",
    "DELETE": "samples.delete_sample",
}


class SamplePermission(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        perm = PERMS.get(request.method, "samples.view_sample")
        return bool(request.user and request.user.is_authenticated and request.user.has_perm(perm))


class LibraryList(generics.ListAPIView):
    serializer_class = SampleLibrarySerializer
    permission_classes = [SamplePermission]
    pagination_class = None
    queryset = SampleLibrary.objects.order_by("media_type", "suggestion", "label")


class SampleListCreate(generics.ListAPIView):
    """Samples, newest first (`?library=<id>&type=&enabled=`), paged by id."""

    serializer_class = SampleSerializer
    permission_classes = [SamplePermission]
    pagination_class = None
    PAGE = 100

    def get_queryset(self):
        params = self.request.query_params
        queryset = Sample.objects.select_related("library").order_by("-id")
        lookups = {"library_id": params.get("library"), "media_type": params.get("type")}
        for field, value in lookups.items():
            if value:
                queryset = queryset.filter(**{field: value})
        if (enabled := params.get("enabled")) in ("true", "false"):
            queryset = queryset.filter(enabled=enabled == "true")
        if (before := params.get("before", "")).isdigit():
            queryset = queryset.filter(id__lt=int(before))
        return queryset[: self.PAGE]

    @extend_schema(request=SampleCreateSerializer, responses={201: SampleSerializer})
    def post(self, request):
        incoming = SampleCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        item, media_type = data["item"], data["type"]
        try:
            image = item.get("image") or (
                scanning._image_fetch(item["url"]) if media_type == "image" else None
            )
        except (fetch.FetchError, media.MediaError) as error:
            return Response(
                {"code": 400, "msg": str(error), "errors": {"item": [str(error)]}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        rows = matching.image_rows(image.data) if image else matching.text_rows(item["text"])
        sample, action = services.sample_add(
            media_type=media_type,
            suggestion=data["suggestion"],
            label=data.get("label", ""),
            rows=rows,
            text=item.get("text", ""),
            image=(image.data, f".{image.info.extension}") if image else None,
            user=request.user,
        )
        body = {**SampleSerializer(sample).data, "action": action}
        return Response(body, status=status.HTTP_201_CREATED if action == "added" else 200)


class SampleDetail(APIView):
    permission_classes = [SamplePermission]

    def _get(self, sample_id: int) -> Sample:
        return generics.get_object_or_404(Sample.objects.select_related("library"), id=sample_id)

    @extend_schema(responses=SampleSerializer)
    def get(self, request, sample_id: int):
        return Response(SampleSerializer(self._get(sample_id)).data)

    @extend_schema(request=SampleUpdateSerializer, responses=SampleSerializer)
    def patch(self, request, sample_id: int):
        incoming = SampleUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        sample = services.sample_set_enabled(
            sample=self._get(sample_id),
            enabled=incoming.validated_data["enabled"],
            user=request.user,
        )
        return Response(SampleSerializer(sample).data)

    @extend_schema(responses={204: None})
    def delete(self, request, sample_id: int):
        services.sample_remove(sample=self._get(sample_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
