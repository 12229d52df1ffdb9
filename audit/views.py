import json
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.static import serve

from audit import display, selectors, services
from audit.access import signed_in_with
from audit.forms import QueueFilterForm
from audit.models import DecisionChannel, MediaType, Result
from policies import selectors as policy_selectors
from policies.models import CATEGORY_NAMES

QUEUE_PAGE_SIZE = 48  # a screenful or two of thumbnails


@login_required
def home(request):
    context = {
        "counts": selectors.result_counts(),
        "retention_days": settings.RESULT_RETENTION_DAYS,
    }
    return render(request, "audit/home.html", context)


@permission_required("audit.view_result", raise_exception=True)
def media_serve(request, path: str):
    """Media of results is harmful content: only signed-in people allowed to review see it.

    In production put a web server's X-Accel-Redirect/X-Sendfile in front of this check.
    """
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


class ItemUrls:
    """The links of a card, reversed once per request rather than a few times per card."""

    def __init__(self):
        self.patterns = {
            name: reverse(name, args=args)
            for name, args in (
                ("audit:detail", [TASK]),
                ("audit_media:thumb", [TASK]),
                ("audit_media:poster", [TASK]),
                ("audit_media:file", [TASK]),
                ("audit_media:frame", [TASK, OFFSET]),
            )
        }

    def url(self, name: str, task_id: str, offset: float | None = None) -> str:
        url = self.patterns[name].replace(TASK, quote(task_id, safe=""))
        return url if offset is None else url.replace(OFFSET, f"{offset:g}")


TASK, OFFSET = "__task__", "__offset__"


def item_context(result: Result, now, urls: ItemUrls) -> dict:
    """What a queue card or the detail page shows of one result."""
    left = display.time_left(result, now)
    task_id = result.task_id
    item = {
        "result": result,
        "scenes": [
            {**scene, "rate_text": f"{scene['rate']:.1f}"} for scene in display.scene_rows(result)
        ],
        "left": display.time_left_text(left),
        "expiring": left.total_seconds() < 24 * 3600,
        "detail_url": urls.url("audit:detail", task_id),
        "file_url": urls.url("audit_media:file", task_id),
    }
    if result.media_type == MediaType.IMAGE:
        item["media_url"] = urls.url("audit_media:thumb", task_id)
    elif result.media_type == MediaType.VIDEO:
        item["media_url"] = urls.url("audit_media:poster", task_id)
        item["frames"] = [
            {
                "offset": f.offset,
                "hits": f.hits,
                "flags": f.flags,
                "url": urls.url("audit_media:frame", task_id, f.offset),
            }
            for f in display.video_frames(result)
        ]
    else:
        item["segments"] = display.text_segments(result.text, result.scene_results)
    return item


def categories_for(biz_type: str, media_type: str) -> list[tuple[str, str]]:
    policy = policy_selectors.policy_for(biz_type or "default")
    return [(key, CATEGORY_NAMES.get(key, key)) for key in policy.categories(media_type)]


@signed_in_with("audit.view_result")
@require_GET
def queue(request):
    form = QueueFilterForm(request.GET)
    page = None
    if form.is_valid():
        page = selectors.result_queue(filters=form.cleaned_data, size=QUEUE_PAGE_SIZE)
    media_type = form.cleaned_data.get("type") or MediaType.IMAGE
    now, urls = timezone.now(), ItemUrls()
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "form": form,
        "media_type": media_type,
        "tabs": MediaType.choices,
        "items": [item_context(r, now, urls) for r in page.items] if page else [],
        "next_cursor": page.next_cursor if page else None,
        "query": query,
        "filtering": any(key not in ("type", "order") for key in query),
        "order": form.cleaned_data.get("order", "oldest"),
        "categories": categories_for(form.cleaned_data.get("biz_type"), media_type),
        "can_decide": request.user.has_perm("audit.add_decision"),
    }
    return render(request, "audit/queue.html", context)


@signed_in_with("audit.view_result")
@require_GET
def counts(request):
    return JsonResponse(selectors.queue_counts())


@signed_in_with("audit.view_result")
@require_GET
def detail(request, task_id: str):
    result = Result.objects.select_related("decided_by").filter(task_id=task_id).first()
    if result is None:
        stub = selectors.result_stub_expired(task_id)
        if stub is None:
            raise Http404("No such result.")
        # Gone, not missing: the decisions made on it are still on record.
        context = {"stub": stub, "history": selectors.decisions_on_task(task_id)}
        return render(request, "audit/expired.html", context, status=410)
    item = item_context(result, timezone.now(), ItemUrls())
    context = {
        "item": item,
        **item,
        "history": selectors.result_history(result),
        "similar": selectors.result_similar(result),
        "touched": selectors.result_touched(result),
        "categories": categories_for(result.biz_type, result.media_type),
        "can_decide": request.user.has_perm("audit.add_decision"),
    }
    return render(request, "audit/detail.html", context)


@signed_in_with("audit.add_decision")
@require_POST
def decide(request):
    """Pass or Block from the Audit page: JSON in, the re-rendered cards out."""
    try:
        body = json.loads(request.body)
        outcome = services.decision_record(
            reviewer=request.user,
            task_ids=[str(t) for t in body.get("taskIds", [])],
            suggestion=str(body.get("suggestion", "")),
            label=str(body.get("label", "")),
            note=str(body.get("note", "")),
            channel=DecisionChannel.CONSOLE,
            versions={str(k): int(v) for k, v in (body.get("versions") or {}).items()},
        )
    except (ValueError, TypeError, AttributeError):
        return JsonResponse({"errors": {"body": ["Not a valid decision request."]}}, status=400)
    except ValidationError as error:
        return JsonResponse({"errors": error.message_dict}, status=400)
    now, urls = timezone.now(), ItemUrls()
    conflicted = Result.objects.filter(task_id__in=[c.task_id for c in outcome.conflicts])
    return JsonResponse(
        {
            "decision": outcome.decision.id if outcome.decision else None,
            "decided": {r.task_id: _card(request, r, now, urls) for r in outcome.decided},
            "conflicts": {
                r.task_id: _card(request, r, now, urls, conflict=True)
                for r in conflicted.select_related("decided_by")
            },
        }
    )


def _card(request, result: Result, now, urls: ItemUrls, conflict: bool = False) -> str:
    context = {"item": item_context(result, now, urls), "conflict": conflict, "can_decide": True}
    return render_to_string("audit/_item.html", context, request=request)
