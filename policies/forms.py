"""Policy forms: checkboxes for the JSON lists, checked by the same rules as the service."""

from django import forms
from django.core.exceptions import ValidationError

from audit.models import MediaType, Suggestion
from policies import services
from policies.models import CATEGORY_NAMES, Policy


def _audit_range_field(media_type: MediaType) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=Suggestion.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=f"{media_type.label} audit range",
        help_text="Machine suggestions that surface on the Audit page.",
    )


def _categories_field(media_type: MediaType) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=list(CATEGORY_NAMES.items()),
        widget=forms.CheckboxSelectMultiple,
        label=f"{media_type.label} categories",
        help_text="Offered to reviewers when they block.",
        error_messages={"required": "Pick at least one category."},
    )


def _keep_order(current: list[str], chosen: list[str]) -> list[str]:
    """Checkboxes post in page order; keep the order reviewers know their keys 1-9 by."""
    return [c for c in current if c in chosen] + [c for c in chosen if c not in current]


class PolicyForm(forms.Form):
    image_audit_range = _audit_range_field(MediaType.IMAGE)
    video_audit_range = _audit_range_field(MediaType.VIDEO)
    text_audit_range = _audit_range_field(MediaType.TEXT)
    image_categories = _categories_field(MediaType.IMAGE)
    video_categories = _categories_field(MediaType.VIDEO)
    text_categories = _categories_field(MediaType.TEXT)
    propagate = forms.BooleanField(
        required=False,
        label="Propagate decisions",
        help_text="Apply each decision to similar results too.",
    )
    # A CharField, not a URLField: the service's rules decide (http/https, no user:pass@, no
    # internal address), and nothing is guessed, such as a missing scheme.
    callback_url = forms.CharField(
        required=False,
        max_length=services.CALLBACK_URL_MAX_LENGTH,
        label="Callback URL",
        help_text="Changed results are POSTed here, signed with the policy's secret "
        "(X-Signature). Empty turns callbacks off.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/moderation-callback"}),
    )

    def clean(self):
        cleaned = super().clean()
        for field in services.CATEGORY_FIELDS:
            if field in cleaned:
                cleaned[field] = _keep_order(self.initial.get(field) or [], cleaned[field])
        try:
            services.policy_validate(self.policy_data())
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return self.cleaned_data

    def policy_data(self) -> dict:
        """The cleaned fields, as `services.policy_update` takes them."""
        return {f: self.cleaned_data[f] for f in services.POLICY_FIELDS if f in self.cleaned_data}


class PolicyCreateForm(PolicyForm):
    biz_type = forms.CharField(
        max_length=64,
        validators=[services.biz_type_validate],
        help_text="As clients send it in bizType: letters, digits, _ and -.",
    )
    field_order = ["biz_type"]

    def clean_biz_type(self) -> str:
        biz_type = self.cleaned_data["biz_type"]
        if Policy.objects.filter(biz_type=biz_type).exists():
            raise ValidationError("This biz type has a policy already.")
        return biz_type


class PolicyAdminForm(PolicyForm, forms.ModelForm):
    biz_type = forms.CharField(max_length=64, validators=[services.biz_type_validate])

    class Meta:
        model = Policy
        fields = ["biz_type", *services.POLICY_FIELDS]
