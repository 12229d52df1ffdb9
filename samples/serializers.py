from rest_framework import serializers

from audit.serializers import LABEL_PATTERN, ResultItemSerializer, StrictRegexField
from samples.models import Sample, SampleLibrary


class SampleLibrarySerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="media_type")

    class Meta:
        model = SampleLibrary
        fields = ["id", "type", "suggestion", "label", "enabled", "created_at"]


class SampleSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="media_type")
    library = SampleLibrarySerializer()
    content = serializers.SerializerMethodField()
    taskId = serializers.CharField(source="task_id")
    decisionId = serializers.IntegerField(source="decision_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Sample
        fields = [
            "id",
            "type",
            "library",
            "enabled",
            "content",
            "taskId",
            "decisionId",
            "createdAt",
        ]

    def get_content(self, sample: Sample) -> str | None:
        return sample.text or None


class SampleCreateSerializer(serializers.Serializer):
    """A sample added by hand: a text, or an image inline as base64 (or by url)."""

    type = serializers.ChoiceField(["image", "text"])
    suggestion = serializers.ChoiceField(["pass", "block"])
    label = StrictRegexField(LABEL_PATTERN, required=False, help_text="The category, to block.")
    item = serializers.DictField(
        help_text="{content} for a text; {content (base64) | url} "
        "for an image, as in POST /api/v1/results."
    )

    def validate(self, attrs: dict) -> dict:
        if attrs["suggestion"] == "block" and not attrs.get("label"):
            raise serializers.ValidationError({"label": ["A block sample needs its category."]})
        item = dict(attrs["item"])
        # The checks of an ingested item, minus the machine results a sample doesn't have.
        item["results"] = [
            {
                "scene": "antispam" if attrs["type"] == "text" else "porn",
                "label": "normal",
                "suggestion": "pass",
                "rate": 0,
            }
        ]
        checked = ResultItemSerializer(data=item, context={"media_type": attrs["type"]})
        if not checked.is_valid():
            raise serializers.ValidationError({"item": checked.errors})
        attrs["item"] = checked.validated_data
        return attrs


class SampleUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
