"""Bodies of the scan API's feedback and results calls (scans use audit's ScanSerializer)."""

from django.conf import settings
from rest_framework import serializers

from audit import fetch
from audit.models import Suggestion
from audit.serializers import (
    BIZ_TYPE_PATTERN,
    LABEL_PATTERN,
    TASK_ID_PATTERN,
    StrictCharField,
    StrictRegexField,
)
from audit.services import PASS_LABEL

SEED_MAX_LENGTH = 64


def callback_url_check(value: str) -> str:
    """The sender's own address rules (audit.fetch), so a URL taken here is one it POSTs to."""
    try:
        fetch.url_check(value, allowed_networks=settings.FETCH_ALLOWED_NETWORKS)
    except fetch.FetchError as error:
        raise serializers.ValidationError(f"Not a usable callback URL: {error}.") from None
    return value


class AsyncCallbackSerializer(serializers.Serializer):
    """The `callback` and `seed` of an async scan's body (Alibaba: seed is required with a
    callback, for the checksum)."""

    callback = StrictCharField(max_length=2048, required=False, allow_blank=True)
    seed = StrictCharField(max_length=SEED_MAX_LENGTH, required=False, allow_blank=True)

    def validate(self, attrs: dict) -> dict:
        if attrs.get("callback"):
            callback_url_check(attrs["callback"])
            if not attrs.get("seed"):
                raise serializers.ValidationError({"seed": "A callback needs a seed."})
        return attrs


class FeedbackSerializer(serializers.Serializer):
    """/green/image/feedback and /green/text/feedback: a taskId, or the content itself (an
    image url, a text) to scan and store first. Images say `suggestion` (block needs a label
    or a scene, the scene naming the category); texts say only `label`, normal meaning pass."""

    taskId = StrictRegexField(TASK_ID_PATTERN, source="task_id", required=False)
    dataId = StrictCharField(source="data_id", max_length=128, required=False, allow_blank=True)
    bizType = StrictRegexField(BIZ_TYPE_PATTERN, source="biz_type", default="default")
    url = serializers.URLField(max_length=2048, required=False)
    content = StrictCharField(
        required=False, trim_whitespace=False, max_length=settings.RESULTS_MAX_TEXT_CHARS
    )
    suggestion = serializers.ChoiceField([Suggestion.PASS, Suggestion.BLOCK], required=False)
    label = StrictRegexField(LABEL_PATTERN, required=False)
    scenes = serializers.ListField(
        child=StrictCharField(max_length=16), required=False, max_length=10
    )
    note = StrictCharField(required=False, allow_blank=True, max_length=1000)

    def validate(self, attrs: dict) -> dict:
        content_field = "url" if self.context["media_type"] == "image" else "content"
        if "task_id" not in attrs and content_field not in attrs:
            raise serializers.ValidationError(f"Give a taskId or the {content_field}.")
        label = attrs.get("label", "")
        suggestion = attrs.get("suggestion") or (
            Suggestion.PASS if label in ("", PASS_LABEL) else Suggestion.BLOCK
        )
        if suggestion == Suggestion.BLOCK and label in ("", PASS_LABEL):
            label = (attrs.get("scenes") or [""])[0]
            if not label:
                raise serializers.ValidationError({"label": "Say which category to block."})
        attrs["suggestion"], attrs["label"] = suggestion, label
        return attrs


class TaskIdsField(serializers.ListField):
    """/green/<type>/results: the body is a JSON array of taskIds."""

    child = StrictRegexField(TASK_ID_PATTERN)

    def __init__(self, **kwargs):
        super().__init__(min_length=1, max_length=settings.RESULTS_MAX_ITEMS, **kwargs)
