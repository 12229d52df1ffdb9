from django.contrib import admin
from django.db import models

from audit.models import Result, ResultScene
from audit.paginators import EstimatedCountPaginator


class ResultSceneInline(admin.TabularInline):
    model = ResultScene
    extra = 0
    can_delete = False
    fields = ("scene", "label", "suggestion", "rate")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Result)
class ResultAdmin(admin.ModelAdmin):
    list_display = (
        "task_id",
        "media_type",
        "biz_type",
        "machine_suggestion",
        "suggestion",
        "label",
        "verdict_source",
        "reviewed",
        "decided_by",
        "fetch_status",
        "created_at",
        "expires_at",
    )
    list_filter = (
        "media_type",
        "machine_suggestion",
        "suggestion",
        "verdict_source",
        "reviewed",
        "fetch_status",
    )
    # Exact matches only: they use the unique/indexed columns instead of scanning for LIKE.
    search_fields = ("=task_id", "=data_id")
    search_help_text = "An exact taskId or dataId."
    ordering = ("-created_at", "-id")
    list_select_related = ("decided_by",)
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    raw_id_fields = ("decided_by",)
    inlines = [ResultSceneInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = (
        "media_type",
        "task_id",
        "scene_results",
        "frames",
        "machine_suggestion",
        "machine_label",
        "fetch_status",
        "fetch_error",
        "fetch_attempts",
        "created_at",
        "expires_at",
    )
    fieldsets = (
        (None, {"fields": ("media_type", "task_id", "data_id", "biz_type")}),
        (
            "Content",
            {
                "fields": (
                    "url",
                    "file",
                    "text",
                    "content_format",
                    "width",
                    "height",
                    "duration",
                    "fetch_status",
                    "fetch_error",
                    "fetch_attempts",
                )
            },
        ),
        (
            "Machine results",
            {"fields": ("scene_results", "frames", "machine_suggestion", "machine_label")},
        ),
        (
            "Verdict",
            {
                "fields": (
                    "suggestion",
                    "label",
                    "verdict_source",
                    "reviewed",
                    "decided_by",
                    "decided_at",
                )
            },
        ),
        ("Retention", {"fields": ("created_at", "expires_at")}),
    )


@admin.register(ResultScene)
class ResultSceneAdmin(admin.ModelAdmin):
    list_display = ("result", "scene", "label", "suggestion", "rate")
    list_filter = ("scene", "suggestion")
    search_fields = ("=result__task_id",)
    search_help_text = "An exact taskId."
    list_select_related = ("result",)
    raw_id_fields = ("result",)
    ordering = ("-id",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
