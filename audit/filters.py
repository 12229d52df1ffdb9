import django_filters
from django.db.models import Exists, OuterRef

from audit.models import MediaType, Result, ResultScene, Suggestion, VerdictSource


class ResultFilter(django_filters.FilterSet):
    """Filters of the results list; the query parameters use the API's camelCase names."""

    type = django_filters.ChoiceFilter(field_name="media_type", choices=MediaType.choices)
    suggestion = django_filters.MultipleChoiceFilter(choices=Suggestion.choices)
    machineSuggestion = django_filters.MultipleChoiceFilter(
        field_name="machine_suggestion", choices=Suggestion.choices
    )
    scene = django_filters.CharFilter(method="filter_scene_label", max_length=16)
    label = django_filters.CharFilter(method="filter_scene_label", max_length=64)
    # A plain BooleanFilter silently ignores "reviewed=perhaps"; a bad value must be a 400.
    reviewed = django_filters.TypedChoiceFilter(
        choices=[("true", "true"), ("false", "false")], coerce=lambda value: value == "true"
    )
    source = django_filters.ChoiceFilter(field_name="verdict_source", choices=VerdictSource.choices)
    createdAfter = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    createdBefore = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    bizType = django_filters.CharFilter(field_name="biz_type", max_length=64)
    taskId = django_filters.CharFilter(field_name="task_id", max_length=64)
    dataId = django_filters.CharFilter(field_name="data_id", max_length=128)

    class Meta:
        model = Result
        fields = []

    def filter_scene_label(self, queryset, name, value):
        # Scene and label name one scene result together, so both go into one EXISTS.
        if name == "label" and self.form.cleaned_data.get("scene"):
            return queryset  # already applied with the scene
        match = {"result": OuterRef("pk")}
        if scene := self.form.cleaned_data.get("scene"):
            match["scene"] = scene
        if label := self.form.cleaned_data.get("label"):
            match["label"] = label
        return queryset.filter(Exists(ResultScene.objects.filter(**match)))
