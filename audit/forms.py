from django import forms
from django.core.exceptions import ValidationError

from audit.models import SCENES, MediaType, Suggestion, VerdictSource
from audit.pagination import Cursor

SLUG = r"^[A-Za-z0-9_\-]{1,64}$"


class QueueFilterForm(forms.Form):
    """The Audit page's filters. They live in the URL, so a view can be bookmarked."""

    type = forms.ChoiceField(choices=MediaType.choices, required=False)
    status = forms.ChoiceField(
        choices=[("unreviewed", "Unreviewed"), ("reviewed", "Reviewed"), ("all", "All")],
        required=False,
    )
    suggestion = forms.MultipleChoiceField(
        choices=Suggestion.choices, required=False, label="Current verdict"
    )
    scene = forms.ChoiceField(required=False)  # choices: the scenes of the tab's type
    label = forms.RegexField(SLUG, required=False, max_length=64)
    source = forms.ChoiceField(
        choices=[("", "Any source"), *VerdictSource.choices],
        required=False,
        label="Verdict from",
    )
    reviewer = forms.CharField(required=False, max_length=150)
    task_id = forms.CharField(required=False, max_length=64, label="taskId")
    data_id = forms.CharField(required=False, max_length=128, label="dataId")
    biz_type = forms.RegexField(SLUG, required=False, max_length=64, label="Biz type")
    date_from = forms.DateTimeField(required=False, label="From")
    date_to = forms.DateTimeField(required=False, label="To")
    expiring = forms.BooleanField(required=False, label="Expiring within 24 h")
    order = forms.ChoiceField(
        choices=[("oldest", "Oldest first"), ("newest", "Newest first")], required=False
    )
    cursor = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        media_type = self.data.get("type")
        scenes = SCENES.get(media_type if media_type in MediaType.values else MediaType.IMAGE)
        self.fields["scene"].choices = [("", "Any scene")] + [(s, s) for s in scenes]

    def clean_type(self) -> str:
        return self.cleaned_data["type"] or MediaType.IMAGE

    def clean_status(self) -> str:
        return self.cleaned_data["status"] or "unreviewed"

    def clean_order(self) -> str:
        return self.cleaned_data["order"] or "oldest"

    def clean_cursor(self) -> str:
        cursor = self.cleaned_data["cursor"]
        if cursor:
            try:
                Cursor.decode(cursor)
            except ValueError:
                raise ValidationError(
                    "This page link is broken; start from the first page."
                ) from None
        return cursor

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end is before the start.")
        return data
