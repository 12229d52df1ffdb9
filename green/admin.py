import re

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from audit.serializers import BIZ_TYPE_PATTERN
from green import services
from green.models import AccessKey


class AccessKeyForm(forms.ModelForm):
    biz_types = forms.CharField(
        required=False,
        label="Biz types",
        help_text="Comma-separated biz types the key may use; empty: any.",
    )

    class Meta:
        model = AccessKey
        fields = ("name", "user", "biz_types", "enabled")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["biz_types"] = ", ".join(self.instance.biz_types or [])

    def clean_biz_types(self) -> list[str]:
        names = [n.strip() for n in self.cleaned_data["biz_types"].split(",") if n.strip()]
        bad = [n for n in names if not re.fullmatch(BIZ_TYPE_PATTERN, n)]
        if bad:
            raise forms.ValidationError(f"Not a biz type: {', '.join(bad)}.")
        return list(dict.fromkeys(names))


@admin.action(description="Revoke the selected AccessKeys (for good)", permissions=["change"])
def revoke(modeladmin, request, queryset):
    revoked = sum(services.access_key_revoke(access_key=k, by=request.user) for k in queryset)
    modeladmin.message_user(request, f"{revoked} AccessKey(s) revoked.", messages.SUCCESS)


@admin.register(AccessKey)
class AccessKeyAdmin(admin.ModelAdmin):
    form = AccessKeyForm
    list_display = (
        "access_key_id",
        "name",
        "user",
        "biz_type_list",
        "enabled",
        "revoked_at",
        "last_used_at",
        "created_at",
    )
    list_select_related = ("user",)
    list_filter = ("enabled", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("access_key_id", "name", "user__username")
    actions = [revoke]
    readonly_fields = (
        "access_key_id",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    )

    @admin.display(description="Biz types")
    def biz_type_list(self, key: AccessKey) -> str:
        return ", ".join(key.biz_types) or "(any)"

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # A revoked key stays revoked; the owner of a key never changes.
        extra = ("user", "enabled") if obj.revoked_at else ("user",)
        return self.readonly_fields + extra

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the record of who held a key stays

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            services.access_key_changed(access_key=obj)
            return
        key, secret = services.access_key_issue(
            user=obj.user, name=obj.name, biz_types=obj.biz_types, created_by=request.user
        )
        if not obj.enabled:
            key.enabled = False
            key.save(update_fields=["enabled"])
        obj.pk, obj.access_key_id = key.pk, key.access_key_id
        # Shown on the next page only, never stored in clear (not even in a message cookie).
        request.green_issued_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        return TemplateResponse(
            request,
            "green/accesskey_issued.html",
            {
                **self.admin_site.each_context(request),
                "title": "AccessKey issued",
                "key": obj,
                "secret": request.green_issued_secret,
                "opts": self.opts,
            },
        )
