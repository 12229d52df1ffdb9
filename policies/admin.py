from django.contrib import admin
from django.utils.html import format_html, format_html_join

from audit.models import MediaType
from policies import selectors, services
from policies.forms import PolicyAdminForm
from policies.models import DEFAULT_BIZ_TYPE, Policy, PolicyChange


def _audit_range_column(media_type: MediaType):
    @admin.display(description=f"{media_type.label} audit range")
    def column(policy: Policy) -> str:
        return ", ".join(policy.audit_range(media_type)) or "(none)"

    column.__name__ = f"{media_type}_range"  # the changelist's CSS class
    return column


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    form = PolicyAdminForm
    list_display = (
        "biz_type",
        _audit_range_column(MediaType.IMAGE),
        _audit_range_column(MediaType.VIDEO),
        _audit_range_column(MediaType.TEXT),
        "propagate",
        "updated_at",
        "updated_by",
    )
    list_select_related = ("updated_by",)
    search_fields = ("biz_type",)
    ordering = ("biz_type",)

    def get_readonly_fields(self, request, obj=None):
        # Renaming would move the history to another biz type: create a new policy instead.
        return ("biz_type", "updated_at", "updated_by") if obj else ("updated_at", "updated_by")

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
