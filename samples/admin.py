from django.contrib import admin, messages

from audit.admin import RecordAdmin
from audit.paginators import EstimatedCountPaginator
from samples import services
from samples.models import (
    Keyword,
    Sample,
    SampleEvent,
    SampleFingerprint,
    SampleLibrary,
    SampleOrigin,
)


@admin.register(SampleLibrary)
class SampleLibraryAdmin(admin.ModelAdmin):
    list_display = ("__str__", "media_type", "suggestion", "label", "enabled", "created_at")
    list_filter = ("media_type", "suggestion", "enabled")


class SampleOriginInline(admin.TabularInline):
    model = SampleOrigin
    extra = 0
    fields = ("task_id", "decision", "distance", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.action(description="Disable the selected samples")
def samples_disable(modeladmin, request, queryset):
    for sample in queryset:
        services.sample_set_enabled(sample=sample, enabled=False, user=request.user)
    modeladmin.message_user(request, "Disabled.", messages.SUCCESS)


@admin.action(description="Enable the selected samples")
def samples_enable(modeladmin, request, queryset):
    for sample in queryset:
        services.sample_set_enabled(sample=sample, enabled=True, user=request.user)
    modeladmin.message_user(request, "Enabled.", messages.SUCCESS)


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = ("id", "library", "media_type", "enabled", "task_id", "decision", "created_at")
    list_filter = ("media_type", "enabled", "library")
    search_fields = ("=task_id", "=origins__task_id")
    search_help_text = "An exact taskId of the result it came from."
    list_select_related = ("library", "decision")
    readonly_fields = (
        "library",
        "media_type",
        "file",
        "text",
        "decision",
        "task_id",
        "enabled",
        "created_at",
    )
    inlines = [SampleOriginInline]
    actions = [samples_disable, samples_enable]
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False  # samples come from decisions (or the samples API)

    def delete_model(self, request, obj):
        services.sample_remove(sample=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        for sample in queryset:
            services.sample_remove(sample=sample, user=request.user)


@admin.register(SampleFingerprint)
class SampleFingerprintAdmin(admin.ModelAdmin):
    list_display = ("sample", "kind", "key", "quality", "form")
    list_filter = ("kind",)
    raw_id_fields = ("sample",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False


@admin.register(SampleEvent)
class SampleEventAdmin(RecordAdmin):
    list_display = ("at", "action", "sample_id_value", "library", "user", "decision")
    list_filter = ("action",)
    list_select_related = ("library", "user", "decision")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Keyword)
class KeywordAdmin(admin.ModelAdmin):
    list_display = ("text", "label", "suggestion", "enabled", "created_at")
    list_filter = ("suggestion", "enabled", "label")
    list_editable = ("enabled",)
    search_fields = ("text",)
