from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from audit.models import MediaType
from moderation_console import crypto
from policies import selectors, services
from policies.forms import PolicyAdminForm
from policies.models import DEFAULT_BIZ_TYPE, Policy, PolicyChange


def _audit_range_column(media_type: MediaType):
    @admin.display(description=f"{media_type.label} audit range")
    def column(policy: Policy) -> str:
        return ", ".join(policy.audit_range(media_type)) or "(none)"

    column.__name__ = f"{media_type}_range"  # the changelist's CSS class
    return column


@admin.action(
    description="Rotate the callback secret of the selected policies", permissions=["change"]
)
def rotate_callback_secret(modeladmin, request, queryset):
    for biz_type in queryset.values_list("biz_type", flat=True):
        services.policy_secret_rotate(biz_type=biz_type, user=request.user)
    modeladmin.message_user(
        request,
        "New callback secrets generated: update the receivers (pending deliveries are signed "
        "with the new secret from their next attempt on).",
        messages.SUCCESS,
    )


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    form = PolicyAdminForm
    list_display = (
        "biz_type",
        _audit_range_column(MediaType.IMAGE),
        _audit_range_column(MediaType.VIDEO),
        _audit_range_column(MediaType.TEXT),
        "propagate",
        "callback_url",
        "updated_at",
        "updated_by",
    )
    list_select_related = ("updated_by",)
    search_fields = ("biz_type",)
    ordering = ("biz_type",)
    actions = [rotate_callback_secret]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("updated_at", "updated_by")
        # Renaming would move the history to another biz type: create a new policy instead.
        fields = ("biz_type", "updated_at", "updated_by")
        # The secret in clear only for those who may change the policy (and so rotate it).
        if self.has_change_permission(request, obj):
            fields += ("callback_secret_panel",)
        return fields

    @admin.display(description="Callback secret")
    def callback_secret_panel(self, policy: Policy) -> str:
        if not policy.callback_secret_encrypted:
            return "Generated when the policy first gets a callback URL."
        rotate = format_html(
            '<button type="submit" formaction="{}" formnovalidate>Rotate</button>',
            reverse("admin:policies_policy_rotate_secret", args=[policy.pk]),
        )
        try:
            secret = policy.callback_secret
        except crypto.DecryptionError as error:
            return format_html("{} {}", error, rotate)
        return format_html(
            "<details><summary>Show (set {})</summary><code>{}</code></details>"
            "<p>Receivers check <code>X-Signature: sha256=&lt;hex HMAC-SHA256 of the body&gt;"
            "</code> with it. {}</p>",
            timezone.localtime(policy.callback_secret_set_at).strftime("%Y-%m-%d %H:%M"),
            secret,
            rotate,
        )

    def get_urls(self):
        rotate = path(
            "<int:object_id>/rotate-secret/",
            self.admin_site.admin_view(self.rotate_secret_view),
            name="policies_policy_rotate_secret",
        )
        return [rotate, *super().get_urls()]

    @method_decorator(require_POST)
    def rotate_secret_view(self, request, object_id: int):
        # Posted by the Rotate button, which submits the change form (and its CSRF token).
        policy = get_object_or_404(Policy, pk=object_id)
        if not self.has_change_permission(request, policy):
            raise PermissionDenied
        services.policy_secret_rotate(biz_type=policy.biz_type, user=request.user)
        self.message_user(request, "New callback secret generated: update the receiver.")
        return redirect("admin:policies_policy_change", policy.pk)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.biz_type == DEFAULT_BIZ_TYPE:
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # The history goes with its policy, though its own admin allows no deletes.
        perms_needed.discard(PolicyChange._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def save_model(self, request, obj, form, change):
        # The service saves and records the change; the admin only needs the saved pk.
        policy, _ = services.policy_update(
            biz_type=obj.biz_type, data=form.policy_data(), user=request.user
        )
        obj.pk = policy.pk

    def delete_model(self, request, obj):
        services.policy_delete(biz_type=obj.biz_type, user=request.user)

    def delete_queryset(self, request, queryset):
        for biz_type in queryset.values_list("biz_type", flat=True):
            services.policy_delete(biz_type=biz_type, user=request.user)


@admin.register(PolicyChange)
class PolicyChangeAdmin(admin.ModelAdmin):
    list_display = ("policy", "changed_by", "changed_at", "diff")
    list_select_related = ("policy", "changed_by")
    list_filter = ("policy",)
    readonly_fields = ("policy", "changed_by", "changed_at", "diff", "before", "after")
    fields = readonly_fields

    @admin.display(description="What changed")
    def diff(self, change: PolicyChange) -> str:
        rows = format_html_join(
            "",
            "<li>{}: {} → {}</li>",
            ((d.label, d.before, d.after) for d in selectors.policy_change_diff(change)),
        )
        return format_html("<ul>{}</ul>", rows) if rows else "(no change)"

    # History is a record: nobody edits it, not even admins.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
