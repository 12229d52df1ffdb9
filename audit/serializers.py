"""Shapes of the results API: validation of what clients send, and what they get back."""

import base64
import binascii
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from audit import media
from audit.models import SCENES, MediaType, Result, Suggestion

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
LABEL_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
BIZ_TYPE_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"


class StrictCharField(serializers.CharField):
    """DRF's CharField turns 12 into "12"; a client sending a number has a bug to hear about.

    Null and surrogate characters are refused as DRF does, but with C-speed checks: DRF's
    validators walk the string in Python, 24 ms for a 1 MB image sent as base64.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.validators = [
            v
            for v in self.validators
            if not isinstance(
                v, ProhibitNullCharactersValidator | ProhibitSurrogateCharactersValidator
            )
        ]

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            raise serializers.ValidationError("Null characters are not allowed.")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise serializers.ValidationError("Surrogate characters are not allowed.") from None
        return super().to_internal_value(data)


class StrictRegexField(StrictCharField, serializers.RegexField):
    pass


class StrictFloatField(serializers.FloatField):
    """A JSON number: DRF's FloatField also takes true and "50"."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


@dataclass(frozen=True)
class InlineImage:
    data: bytes
    info: media.ImageInfo


class TextPositionSerializer(serializers.Serializer):
    startPos = serializers.IntegerField(min_value=0)  # the v1 field names
    endPos = serializers.IntegerField(min_value=0)


class TextContextSerializer(serializers.Serializer):
    context = StrictCharField(max_length=1000, trim_whitespace=False)
    positions = TextPositionSerializer(many=True, required=False, max_length=100)


class TextDetailSerializer(serializers.Serializer):
    label = StrictRegexField(LABEL_PATTERN)
    contexts = TextContextSerializer(many=True, required=False, max_length=100)


class FrameHitSerializer(serializers.Serializer):
    offset = StrictFloatField(min_value=0)
    url = serializers.URLField(max_length=2048, required=False)
    label = StrictRegexField(LABEL_PATTERN, required=False)
    rate = StrictFloatField(min_value=0, max_value=100, required=False)


class SceneResultSerializer(serializers.Serializer):
    scene = StrictCharField(max_length=16)
    label = StrictRegexField(LABEL_PATTERN)
    suggestion = serializers.ChoiceField(Suggestion.values)
    rate = StrictFloatField(min_value=0, max_value=100)
    details = TextDetailSerializer(many=True, required=False, max_length=100)
    frames = FrameHitSerializer(many=True, required=False, max_length=1000)

    def validate_scene(self, value: str) -> str:
        allowed = SCENES[self.context["media_type"]]
        if value not in allowed:
            raise serializers.ValidationError(
                f"Unknown scene {value!r} for {self.context['media_type']}; "
                f"expected one of: {', '.join(allowed)}."
            )
        return value


SCENE_KEYS = frozenset({"scene", "label", "suggestion", "rate"})
LABEL_RE = re.compile(LABEL_PATTERN)


def _scene_result_fast(result, scenes: tuple[str, ...]) -> dict | None:
    """A plain {scene, label, suggestion, rate} that is valid as it is, else None."""
    if type(result) is not dict or result.keys() != SCENE_KEYS:
        return None
    rate, label = result["rate"], result["label"]
    valid = (
        result["scene"] in scenes
        and result["suggestion"] in Suggestion.values
        and type(rate) in (int, float)
        and 0 <= rate <= 100
        and type(label) is str
        and LABEL_RE.fullmatch(label)
    )
    return {**result, "rate": float(rate)} if valid else None


@extend_schema_field(SceneResultSerializer(many=True))
class SceneResultsField(serializers.Field):
    """1-20 scene results. The common valid case is checked in plain Python, anything else
    (details, frames, an error to report) by SceneResultSerializer: DRF's nested serializers
    took a fifth of the ingest time for it (benchmarks/ingest.py)."""

    def to_internal_value(self, data):
        if type(data) is list and 1 <= len(data) <= 20:
            fast = [_scene_result_fast(r, SCENES[self.context["media_type"]]) for r in data]
            if all(fast):
                return fast
        full = SceneResultSerializer(
            data=data, many=True, min_length=1, max_length=20, context=self.context
        )
        full.is_valid(raise_exception=True)
        return full.validated_data

    def to_representation(self, value):
        return value


class FrameSerializer(serializers.Serializer):
    offset = StrictFloatField(min_value=0)
    url = serializers.URLField(max_length=2048, required=False)
    results = SceneResultSerializer(many=True, required=False, max_length=20)


class ResultItemSerializer(serializers.Serializer):
    """One item of an ingest request; which fields apply depends on the request's type."""

    dataId = StrictCharField(source="data_id", max_length=128, required=False, allow_blank=True)
    taskId = StrictRegexField(
        TASK_ID_PATTERN,
        source="task_id",
        required=False,
        error_messages={"invalid": "Use 1-64 letters, digits and _ . : - characters."},
    )
    url = serializers.URLField(max_length=2048, required=False)
    content = StrictCharField(
        required=False, trim_whitespace=False, allow_blank=False, max_length=None
    )
    frames = FrameSerializer(many=True, required=False, max_length=1000)
    results = SceneResultsField()

    def validate(self, attrs: dict) -> dict:
        validate_content = {
            MediaType.TEXT: self._validate_text,
            MediaType.IMAGE: self._validate_image,
            MediaType.VIDEO: self._validate_video,
        }[self.context["media_type"]]
        return validate_content(attrs)

    def _validate_text(self, attrs: dict) -> dict:
        text = attrs.pop("content", None)
        if text is None:
            raise serializers.ValidationError({"content": "Text items need content."})
        if len(text) > settings.RESULTS_MAX_TEXT_CHARS:
            raise serializers.ValidationError(
                {"content": f"Text is longer than {settings.RESULTS_MAX_TEXT_CHARS} characters."}
            )
        for field in ("url", "frames"):
            if field in attrs:
                raise serializers.ValidationError({field: "Not allowed for text items."})
        attrs["text"] = text
        return attrs

    def _validate_image(self, attrs: dict) -> dict:
        content = attrs.pop("content", None)
        if "frames" in attrs:
            raise serializers.ValidationError({"frames": "Not allowed for image items."})
        if (content is None) == ("url" not in attrs):
            raise serializers.ValidationError(
                {"url": "Give either a url or the image inline as base64 content, not both."}
            )
        if content is not None:
            attrs["image"] = self._inline_image(content)
        return attrs

    def _inline_image(self, content: str) -> InlineImage:
        limit = settings.RESULTS_MAX_IMAGE_BYTES
        # base64 is 4 characters per 3 bytes: refuse before decoding anything too large.
        if len(content) > (limit + 2) // 3 * 4 + 4:
            raise serializers.ValidationError(
                {"content": f"Image is larger than {limit // (1024 * 1024)} MB."}
            )
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError(
                {"content": "Not valid base64 (use the standard alphabet, no line breaks)."}
            ) from None
        if len(data) > limit:
            raise serializers.ValidationError(
                {"content": f"Image is larger than {limit // (1024 * 1024)} MB."}
            )
        try:
            info = media.image_inspect(data, max_pixels=settings.RESULTS_MAX_IMAGE_PIXELS)
        except media.MediaError as error:
            raise serializers.ValidationError({"content": str(error)}) from None
        return InlineImage(data=data, info=info)

    def _validate_video(self, attrs: dict) -> dict:
        if "content" in attrs:
            raise serializers.ValidationError(
                {"content": "Videos are sent as a url and/or frames, not inline."}
            )
        if "url" not in attrs and not attrs.get("frames"):
            raise serializers.ValidationError({"url": "Video items need a url or frames."})
        return attrs


class IngestSerializer(serializers.Serializer):
    type = serializers.ChoiceField(MediaType.values)
    bizType = StrictRegexField(
        BIZ_TYPE_PATTERN, source="biz_type", required=False, default="default"
    )
    data = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=settings.RESULTS_MAX_ITEMS
    )

    def validate(self, attrs: dict) -> dict:
        items = ResultItemSerializer(
            data=attrs["data"], many=True, context={"media_type": attrs["type"]}
        )
        if not items.is_valid():
            raise serializers.ValidationError({"data": items.errors})
        attrs["data"] = items.validated_data
        self._check_unique_task_ids(attrs["data"])
        return attrs

    @staticmethod
    def _check_unique_task_ids(items: list[dict]) -> None:
        first_seen: dict[str, int] = {}
        errors: dict[int, dict] = {}
        for index, item in enumerate(items):
            task_id = item.get("task_id")
            if task_id is None:
                continue
            if task_id in first_seen:
                message = f"Duplicate taskId in this request (also item {first_seen[task_id]})."
                errors[index] = {"taskId": [message]}
            first_seen.setdefault(task_id, index)
        if errors:
            raise serializers.ValidationError({"data": errors})


class ResultSerializer(serializers.ModelSerializer):
    """The state of a stored result, as the API returns it."""

    taskId = serializers.CharField(source="task_id")
    dataId = serializers.CharField(source="data_id")
    bizType = serializers.CharField(source="biz_type")
    type = serializers.CharField(source="media_type")
    content = serializers.SerializerMethodField()
    file = serializers.SerializerMethodField()
    results = serializers.JSONField(source="scene_results")
    machineSuggestion = serializers.CharField(source="machine_suggestion")
    machineLabel = serializers.CharField(source="machine_label")
    source = serializers.CharField(source="verdict_source")
    decidedBy = serializers.SerializerMethodField()
    decidedAt = serializers.DateTimeField(source="decided_at")
    fetch = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    expiresAt = serializers.DateTimeField(source="expires_at")

    class Meta:
        model = Result
        fields = [
            "taskId",
            "dataId",
            "bizType",
            "type",
            "url",
            "content",
            "file",
            "results",
            "frames",
            "machineSuggestion",
            "machineLabel",
            "suggestion",
            "label",
            "source",
            "reviewed",
            "decidedBy",
            "decidedAt",
            "fetch",
            "createdAt",
            "expiresAt",
        ]

    def get_content(self, result: Result) -> str | None:
        return result.text if result.media_type == MediaType.TEXT else None

    def get_file(self, result: Result) -> str | None:
        if not result.file:
            return None
        request = self.context.get("request")
        url = result.file.url
        return request.build_absolute_uri(url) if request else url

    def get_decidedBy(self, result: Result) -> str | None:  # noqa: N802
        return result.decided_by.get_username() if result.decided_by_id else None

    def get_fetch(self, result: Result) -> dict:
        return {
            "status": result.fetch_status,
            "error": result.fetch_error or None,
            "attempts": result.fetch_attempts,
        }


class IngestedSerializer(ResultSerializer):
    created = serializers.BooleanField(help_text="False when the taskId was already stored.")

    class Meta(ResultSerializer.Meta):
        fields = [*ResultSerializer.Meta.fields, "created"]


class MarkSerializer(serializers.Serializer):
    taskIds = serializers.ListField(
        child=StrictRegexField(TASK_ID_PATTERN), min_length=1, max_length=500
    )
    suggestion = serializers.ChoiceField(["pass", "block"])
    label = StrictRegexField(
        LABEL_PATTERN, required=False, help_text="The category; required to block."
    )
    note = StrictCharField(required=False, allow_blank=True, max_length=1000)
    versions = serializers.DictField(
        child=serializers.IntegerField(min_value=0),
        required=False,
        help_text="taskId -> the version you saw; an item decided since is a conflict. "
        "Without it, an item a human already decided is a conflict.",
    )


class ConflictSerializer(serializers.Serializer):
    taskId = serializers.CharField(source="task_id")
    decidedBy = serializers.CharField(source="decided_by", allow_null=True)
    decidedAt = serializers.DateTimeField(source="decided_at", allow_null=True)
    suggestion = serializers.CharField()
    label = serializers.CharField()


class MarkResultSerializer(serializers.Serializer):
    code = serializers.IntegerField()
    msg = serializers.CharField()
    decisionId = serializers.IntegerField(allow_null=True)
    decided = ResultSerializer(many=True)
    conflicts = ConflictSerializer(many=True)


class ScanTaskSerializer(ResultItemSerializer):
    """A task of a scan request: like an ingested item, but the verdict is ours to give;
    `results` from an upstream engine may come along."""

    results = SceneResultsField(required=False)


class ScanSerializer(serializers.Serializer):
    bizType = StrictRegexField(
        BIZ_TYPE_PATTERN, source="biz_type", required=False, default="default"
    )
    scenes = serializers.ListField(
        child=StrictCharField(max_length=16), min_length=1, max_length=10
    )
    tasks = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=settings.RESULTS_MAX_ITEMS
    )

    def validate_scenes(self, scenes: list[str]) -> list[str]:
        allowed = SCENES[self.context["media_type"]]
        unknown = [s for s in scenes if s not in allowed]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown scenes {', '.join(unknown)}; expected some of: {', '.join(allowed)}."
            )
        return list(dict.fromkeys(scenes))

    def validate(self, attrs: dict) -> dict:
        tasks = ScanTaskSerializer(data=attrs["tasks"], many=True, context=self.context)
        if not tasks.is_valid():
            raise serializers.ValidationError({"tasks": tasks.errors})
        attrs["tasks"] = tasks.validated_data
        return attrs
