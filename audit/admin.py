from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from audit import callbacks, services
from audit.models import (
    CallbackDelivery,
    Decision,
    DecisionChannel,
    DecisionItem,
    DecisionTarget,
    PurgeRun,
    Result,
    ResultFingerprint,
    ResultScene,
)
from audit.paginators import EstimatedCountPaginator
from policies.models import CATEGORY_NAMES


class RecordAdmin(admin.ModelAdmin):
    """A record of what happened: readable in the admin, never added or edited there
    (decisions are made on the Audit page, through the API or the results' actions)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def _mark(modeladmin, request, queryset, suggestion: str, label: str = "") -> None:
    task_ids = list(queryset.values_list("task_id", flat=True)[: services.MAX_DECISION_ITEMS + 1])
    try:
        outcome = services.decision_record(
            reviewer=request.user,
            task_ids=task_ids,
            suggestion=suggestion,
            label=label,
            channel=DecisionChannel.ADMIN,
        )
    except ValidationError as error:
        modeladmin.message_user(request, " ".join(error.messages), messages.ERROR)
        return
    if outcome.decided:
        modeladmin.message_user(
            request, f"Marked {len(outcome.decided)} result(s) {suggestion}.", messages.SUCCESS
        )
    if outcome.conflicts:
        modeladmin.message_user(
            request,
            f"{len(outcome.conflicts)} result(s) were already decided by a reviewer: unchanged.",
            messages.WARNING,
        )


@admin.action(description="Mark selected results: Pass", permissions=["decide"])
def mark_pass(modeladmin, request, queryset):
    _mark(modeladmin, request, queryset, "pass")


def _block_action(category: str, name: str):
    def action(modeladmin, request, queryset):
        _mark(modeladmin, request, queryset, "block", category)

    action.__name__ = f"mark_block_{category}"
    return admin.action(
        description=f"Mark selected results: Block · {name}", permissions=["decide"]
    )(action)


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
    inlines = [ResultSceneInline]
    actions = [mark_pass, *(_block_action(key, name) for key, name in CATEGORY_NAMES.items())]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = (
        "media_type",
        "task_id",
        "scene_results",
        "frames",
        "machine_suggestion",
        "machine_label",
        # The verdict changes only through decisions (the actions above), which keep history.
        "suggestion",
        "label",
        "verdict_source",
        "reviewed",
        "decided_by",
        "decided_at",
        "decision",
        "version",
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
                    "decision",
                    "version",
                )
            },
        ),
        ("Retention", {"fields": ("created_at", "expires_at")}),
    )

    def has_decide_permission(self, request) -> bool:
        return request.user.has_perm("audit.add_decision")


class DecisionItemInline(admin.TabularInline):
    model = DecisionItem
    extra = 0
    can_delete = False
    fields = (
        "task_id",
        "media_type",
        "result",
        "previous_suggestion",
        "previous_label",
        "previous_source",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Decision)
class DecisionAdmin(RecordAdmin):
    list_display = (
        "id",
        "created_at",
        "reviewer",
        "channel",
        "suggestion",
        "label",
        "item_count",
        "propagation",
        "changed_count",
        "note",
    )
    list_filter = ("suggestion", "label", "channel")
    search_fields = ("=items__task_id", "reviewer__username")
    search_help_text = "An exact taskId, or a reviewer's username."
    list_select_related = ("reviewer",)
    ordering = ("-created_at", "-id")
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    inlines = [DecisionItemInline]
    readonly_fields = (
        "reviewer",
        "channel",
        "suggestion",
        "label",
        "note",
        "item_count",
        "created_at",
        "propagation",
        "propagated_at",
        "propagation_attempts",
        "changed_count",
        "changed_task_ids",
        "samples_added",
        "callback_log",
    )

    @admin.display(description="Callbacks")
    def callback_log(self, decision: Decision) -> str:
        counts = dict(
            decision.callback_deliveries.order_by()
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        if not counts:
            return "None (no callback URL in the policy, or nothing changed)."
        url = reverse("admin:audit_callbackdelivery_changelist")
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return format_html('<a href="{}?decision__id__exact={}">{}</a>', url, decision.id, summary)


@admin.register(DecisionItem)
class DecisionItemAdmin(RecordAdmin):
    list_display = ("decision", "task_id", "media_type", "previous_suggestion", "result")
    search_fields = ("=task_id",)
    list_select_related = ("decision", "result")
    raw_id_fields = ("decision", "result")
    paginator = EstimatedCountPaginator
    show_full_result_count = False


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


@admin.register(DecisionTarget)
class DecisionTargetAdmin(RecordAdmin):
    list_display = ("decision", "task_id", "matched_by", "distance", "previous_suggestion")
    search_fields = ("=task_id",)
    raw_id_fields = ("decision", "result")
    paginator = EstimatedCountPaginator
    show_full_result_count = False


@admin.register(ResultFingerprint)
class ResultFingerprintAdmin(admin.ModelAdmin):
    list_display = ("result", "kind", "key", "quality", "form")
    list_filter = ("kind",)
    raw_id_fields = ("result",)
    list_select_related = ("result",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False


@admin.action(description="Retry now", permissions=["retry"])
def retry_now(modeladmin, request, queryset):
    retried = callbacks.callbacks_retry(delivery_ids=list(queryset.values_list("id", flat=True)))
    modeladmin.message_user(
        request,
        f"{len(retried)} delivery(ies) due now and queued; delivered ones are never resent.",
        messages.SUCCESS,
    )


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(RecordAdmin):
    list_display = (
        "id",
        "created_at",
        "event",
        "form",
        "status",
        "task_id",
        "url",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "decision",
    )
    list_filter = ("status", "event", "form")
    list_select_related = ("decision",)
    search_fields = ("=task_id",)
    search_help_text = "An exact taskId."
    ordering = ("-id",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = [retry_now]
    fields = (
        "uuid",
        "event",
        "form",
        "decision",
        "task_id",
        "result",
        "policy",
        "url",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
        "body",
    )
    readonly_fields = fields

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("audit.change_callbackdelivery")


@admin.register(PurgeRun)
class PurgeRunAdmin(RecordAdmin):
    """When the retention job ran and what it removed (its schedule: Periodic tasks)."""

    list_display = (
        "started_at",
        "status",
        "results_removed",
        "days_dropped",
        "rows_deleted",
        "files_removed",
        "stubs_removed",
        "duration",
    )
    list_filter = ("status",)
    date_hierarchy = "started_at"

    @admin.display(description="days dropped")
    def days_dropped(self, run: PurgeRun) -> str:
        return ", ".join(run.partitions_dropped) or "-"

    @admin.display(description="took")
    def duration(self, run: PurgeRun) -> str:
        if not run.finished_at:
            return "-"
        return f"{(run.finished_at - run.started_at).total_seconds():.1f} s"
