import json

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.static import serve

from audit import display, selectors, services
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


def item_context(result: Result, now) -> dict:
    """What a queue card or the detail page shows of one result."""
    left = display.time_left(result, now)
    context = {
        "result": result,
        "scenes": display.scene_rows(result),
        "left": display.time_left_text(left),
        "expiring": left.total_seconds() < 24 * 3600,
    }
    if result.media_type == MediaType.TEXT:
        context["segments"] = display.text_segments(result.text, result.scene_results)
    if result.media_type == MediaType.VIDEO:
        context["frames"] = display.flagged_frames(result)
    return context


def categories_for(biz_type: str, media_type: str) -> list[tuple[str, str]]:
    policy = policy_selectors.policy_for(biz_type or "default")
    return [(key, CATEGORY_NAMES.get(key, key)) for key in policy.categories(media_type)]


@login_required
@permission_required("audit.view_result", raise_exception=True)
@require_GET
def queue(request):
    form = QueueFilterForm(request.GET)
    page = None
    if form.is_valid():
        page = selectors.result_queue(filters=form.cleaned_data, size=QUEUE_PAGE_SIZE)
    media_type = form.cleaned_data.get("type") or MediaType.IMAGE
    now = timezone.now()
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "form": form,
        "media_type": media_type,
        "tabs": MediaType.choices,
        "items": [item_context(r, now) for r in page.items] if page else [],
        "next_cursor": page.next_cursor if page else None,
        "query": query,
        "filtering": any(key not in ("type", "order") for key in query),
        "order": form.cleaned_data.get("order", "oldest"),
        "categories": categories_for(form.cleaned_data.get("biz_type"), media_type),
        "can_decide": request.user.has_perm("audit.add_decision"),
    }
    return render(request, "audit/queue.html", context)


@login_required
@permission_required("audit.view_result", raise_exception=True)
@require_GET
def counts(request):
    return JsonResponse(selectors.queue_counts())


@login_required
@permission_required("audit.view_result", raise_exception=True)
@require_GET
def detail(request, task_id: str):
    result = Result.objects.select_related("decided_by").filter(task_id=task_id).first()
    if result is None:
        raise Http404("No such result (it may have expired).")
    context = {
        **item_context(result, timezone.now()),
        "history": selectors.result_history(result),
        "categories": categories_for(result.biz_type, result.media_type),
        "can_decide": request.user.has_perm("audit.add_decision"),
    }
    return render(request, "audit/detail.html", context)


@login_required
@permission_required("audit.add_decision", raise_exception=True)
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
    now = timezone.now()
    conflicted = Result.objects.filter(task_id__in=[c.task_id for c in outcome.conflicts])
    return JsonResponse(
        {
            "decision": outcome.decision.id if outcome.decision else None,
            "decided": {r.task_id: _card(request, r, now) for r in outcome.decided},
            "conflicts": {
                r.task_id: _card(request, r, now, conflict=True)
                for r in conflicted.select_related("decided_by")
            },
        }
    )


def _card(request, result: Result, now, conflict: bool = False) -> str:
    context = {**item_context(result, now), "conflict": conflict, "can_decide": True}
    return render_to_string("audit/_item.html", context, request=request)
