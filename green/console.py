"""The console API of Content Moderation (2017-08-23) as alibabacloud-green20170823 calls it:
RPC style, `POST /?<parameters>` with `x-acs-action`, signed ACS3-HMAC-SHA256. The actions
map onto the Audit page's queue selector, decision_record and the policies service; answers
are `{RequestId, ...}` with Alibaba's field names."""

import json
from datetime import UTC, datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import QueryDict
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from audit import selectors
from audit import services as audit_services
from audit.models import DecisionChannel, MediaType, Result, Suggestion
from green import errors
from green.api import GreenView
from green.auth import Acs3SignatureAuthentication
from green.errors import GreenError
from green.models import AccessKey, AuditSetting
from green.serializers import SEED_MAX_LENGTH, callback_url_check
from policies import selectors as policy_selectors
from policies import services as policy_services
from policies.models import DEFAULT_BIZ_TYPE, Policy
from samples.models import Keyword, Sample

VERSION = "2017-08-23"
MAX_PAGE_SIZE = 100
RANGE_KEYS = (Suggestion.BLOCK, Suggestion.REVIEW, Suggestion.PASS)
# LibType: Alibaba's custom library categories, as the verdict of our sample libraries.
LIB_TYPES = {"BLACK": Suggestion.BLOCK, "WHITE": Suggestion.PASS, "REVIEW": Suggestion.REVIEW}


class ConsoleApi(GreenView):
    authentication_classes = [Acs3SignatureAuthentication]
    permission_classes = [IsAuthenticated]  # each action checks its own permission

    @extend_schema(exclude=True)
    def post(self, request):
        headers = request.headers
        action = headers.get("x-acs-action") or request.query_params.get("Action", "")
        if (headers.get("x-acs-version") or request.query_params.get("Version")) != VERSION:
            raise GreenError(400, "InvalidVersion", f"This endpoint speaks version {VERSION}.")
        if action not in ACTIONS:
            raise GreenError(404, "InvalidAction.NotFound", f"Unknown action {action!r}.")
        permission, run = ACTIONS[action]
        if not request.user.has_perm(permission):
            raise GreenError(403, "Forbidden.RAM", f"{action} needs the {permission} permission.")
        try:
            body = run(request, _params(request), request.auth)
        except DjangoValidationError as error:
            raise errors.bad_request(" ".join(error.messages)) from None
        return Response({"RequestId": request.green_request_id, **body})

    get = post


def console_or(page_view):
    """The root URL: console API calls (they carry x-acs-action) go to the API, everything
    else to `page_view`, which keeps its CSRF protection."""
    api = ConsoleApi.as_view()
    page = csrf_protect(page_view)

    @csrf_exempt
    def root(request, *args, **kwargs):
        if "HTTP_X_ACS_ACTION" in request.META or "Action" in request.GET:
            return api(request, *args, **kwargs)
        return page(request, *args, **kwargs)

    return root


def _params(request) -> QueryDict:
    params = request.query_params.copy()
    if request.content_type == "application/x-www-form-urlencoded":
        params.update(QueryDict(request._request.body))
    return params


# --- Audit content ----------------------------------------------------------------------------


def describe_audit_content(request, params: QueryDict, key: AccessKey) -> dict:
    filters = _queue_filters(params)
    queryset = selectors.result_queue_queryset(filters=filters)
    if machine := params.get("Suggestion"):
        queryset = queryset.filter(machine_suggestion=_choice("Suggestion", machine, RANGE_KEYS))
    if key.biz_types:
        queryset = queryset.filter(biz_type__in=key.biz_types)
    page, size = _int(params, "CurrentPage", 1, 1), _int(params, "PageSize", 20, 1)
    size = min(size, MAX_PAGE_SIZE)
    rows = queryset.order_by("-created_at", "-id")[(page - 1) * size : page * size]
    return {
        "AuditContentList": [_content(request, r) for r in rows],
        "TotalCount": queryset.count(),
        "CurrentPage": page,
        "PageSize": size,
    }


def _queue_filters(params: QueryDict) -> dict:
    media_type = params.get("ResourceType", MediaType.IMAGE).lower()
    filters = {
        "type": _choice("ResourceType", media_type, MediaType.values),
        "status": "all",
        "order": "newest",
        "scene": params.get("Scene"),
        "label": params.get("Label"),
        "biz_type": params.get("BizType"),
        "task_id": params.get("TaskId"),
        "data_id": params.get("DataId"),
        "date_from": _date(params, "StartDate"),
        "date_to": _date(params, "EndDate"),
    }
    # AuditResult: what a human decided (pass or block), or "none" for what awaits review.
    if audit_result := params.get("AuditResult"):
        audited = _choice("AuditResult", audit_result, ("pass", "block", "none"))
        filters["status"] = "unreviewed" if audited == "none" else "reviewed"
        filters["suggestion"] = [] if audited == "none" else [audited]
    return {**filters, **_library_filters(params, filters["type"])}


def _library_filters(params: QueryDict, media_type: str) -> dict:
    """What a result hit in the custom libraries: LibType, the kind of library that answered
    it (BLACK, WHITE or REVIEW, Alibaba's library categories, for our block, pass and review
    sample libraries); ImageId, the image sample that answered it; KeywordId, a keyword of
    the text engine (our keyword library) that it contains."""
    filters = {}
    if lib_type := params.get("LibType"):
        category = _choice("LibType", lib_type.upper(), tuple(LIB_TYPES))
        filters["library"] = LIB_TYPES[category]
    if "ImageId" in params:
        if media_type != MediaType.IMAGE:
            raise errors.bad_request("ImageId: only with ResourceType IMAGE.")
        sample_id = _id(params, "ImageId")
        filters["sample"] = Sample.objects.filter(id=sample_id, media_type=media_type).first()
        if filters["sample"] is None:
            raise errors.bad_request(f"ImageId: there is no image sample {sample_id}.")
    if "KeywordId" in params:
        if media_type != MediaType.TEXT:
            raise errors.bad_request("KeywordId: only with ResourceType TEXT.")
        keyword_id = _id(params, "KeywordId")
        filters["keyword"] = Keyword.objects.filter(id=keyword_id).first()
        if filters["keyword"] is None:
            raise errors.bad_request(f"KeywordId: there is no keyword {keyword_id}.")
    return filters


def _content(request, result: Result) -> dict:
    decided = result.reviewed
    item = {
        "Id": result.id,
        "TaskId": result.task_id,
        "DataId": result.data_id,
        "BizType": result.biz_type,
        "Suggestion": result.machine_suggestion,
        "Results": [
            {"Scene": r["scene"], "Label": r["label"], "Suggestion": r["suggestion"]}
            for r in result.scene_results
        ],
        "Audit": 1 if decided else 0,
        "AuditResult": result.suggestion if decided else "",
        "AuditIllegalReasons": [result.label] if decided and result.suggestion == "block" else [],
        "RequestTime": _time(result.created_at),
        "ScanFinishedTime": _time(result.created_at),
    }
    if result.media_type == MediaType.TEXT:
        item["Content"] = result.text
    else:
        item["Url"] = result.url
        if result.file:
            item["NewUrl"] = request.build_absolute_uri(result.file.url)
            name = "audit_media:thumb" if result.media_type == "image" else "audit_media:poster"
            item["Thumbnail"] = request.build_absolute_uri(reverse(name, args=[result.task_id]))
    if result.frames:
        item["FrameResults"] = [
            {"Url": f.get("url", ""), "Offset": f["offset"], "Label": _frame_label(f)}
            for f in result.frames
        ]
    return item


def _frame_label(frame: dict) -> str:
    hits = [r for r in frame.get("results", []) if r["suggestion"] != "pass"]
    return hits[0]["label"] if hits else "normal"


def mark_audit_content(request, params: QueryDict, key: AccessKey) -> dict:
    ids = _json_param(params, "Ids", list)
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise errors.bad_request("Ids must be a JSON array of the Id numbers.")
    suggestion = _choice("AuditResult", params.get("AuditResult", ""), ("pass", "block"))
    reasons = (
        _json_param(params, "AuditIllegalReasons", list) if "AuditIllegalReasons" in params else []
    )
    results = Result.objects.filter(id__in=ids)
    if key.biz_types:
        results = results.filter(biz_type__in=key.biz_types)
    task_ids = list(results.values_list("task_id", flat=True))
    if len(task_ids) != len(set(ids)):
        raise GreenError(404, "NotFound", "Some Ids are unknown or expired.")
    outcome = audit_services.decision_record(
        reviewer=request.user,
        task_ids=task_ids,
        suggestion=suggestion,
        label=str(reasons[0]) if reasons else "",
        channel=DecisionChannel.API,
    )
    if outcome.decision is None:
        raise GreenError(409, "Conflict", "Every item was already decided by someone else.")
    return {"Conflicts": [c.task_id for c in outcome.conflicts]}


# --- Audit range and settings -------------------------------------------------------------


def describe_audit_range(request, params: QueryDict, key: AccessKey) -> dict:
    return _range_answer(policy_selectors.policy_for(DEFAULT_BIZ_TYPE))


def update_audit_range(request, params: QueryDict, key: AccessKey) -> dict:
    _settings_check(key)
    _range_update(request.user, params)
    return {}


def describe_audit_setting(request, params: QueryDict, key: AccessKey) -> dict:
    policy = policy_selectors.policy_for(DEFAULT_BIZ_TYPE)
    setting = AuditSetting.objects.filter(biz_type=DEFAULT_BIZ_TYPE).first()
    return {
        **_range_answer(policy),
        "Callback": setting.callback_url if setting else "",
        "Seed": setting.seed if setting else "",
    }


def update_audit_setting(request, params: QueryDict, key: AccessKey) -> dict:
    """The audit range goes to the default policy; Callback and Seed to its AuditSetting:
    review results are POSTed there in Alibaba's form (green.callbacks)."""
    _settings_check(key)
    changes = {}
    if "Callback" in params:
        changes["callback_url"] = _callback_url(params["Callback"].strip())
    if "Seed" in params:
        if len(params["Seed"]) > SEED_MAX_LENGTH:
            raise errors.bad_request(f"Seed is at most {SEED_MAX_LENGTH} characters.")
        changes["seed"] = params["Seed"]
    with transaction.atomic():
        if "AuditRange" in params:
            _range_update(request.user, params)
        if changes:
            AuditSetting.objects.update_or_create(biz_type=DEFAULT_BIZ_TYPE, defaults=changes)
    return {}


def _callback_url(value: str) -> str:
    if not value:
        return ""
    try:
        return callback_url_check(value)
    except ValidationError as error:
        raise errors.bad_request(f"Callback: {' '.join(map(str, error.detail))}") from None


def _settings_check(key: AccessKey) -> None:
    if key.biz_types:
        raise GreenError(403, "Forbidden", "This AccessKey is limited to some biz types.")


def _range_answer(policy) -> dict:
    """Alibaba's audit range is one per account (no content type in DescribeAuditRange or
    UpdateAuditRange), ours one per content type of the default policy; UpdateAuditRange sets
    all three alike. Where they differ (the policy page edits them apart), `AuditRange` has
    a key true when any content type surfaces that suggestion, and `AuditRangeByResourceType`
    (ours, which the SDK ignores) says what each surfaces; `AuditRangeConsistent` is false."""
    by_type = {
        t.upper(): {s: s in policy.audit_range(t) for s in RANGE_KEYS} for t in MediaType.values
    }
    union = {s: any(r[s] for r in by_type.values()) for s in RANGE_KEYS}
    return {
        "AuditRange": union,
        "AuditRangeByResourceType": by_type,
        "AuditRangeConsistent": all(r == union for r in by_type.values()),
    }


@transaction.atomic
def _range_update(user, params: QueryDict) -> None:
    """Each key of the AuditRange given is set for every content type; a key left out stays
    as each content type has it (read under the policy's row lock, so two updates of
    different keys both land)."""
    wanted = _json_param(params, "AuditRange", dict)
    if not all(k in RANGE_KEYS and isinstance(v, bool) for k, v in wanted.items()):
        raise errors.bad_request(
            'AuditRange is like {"block": true, "review": true, "pass": false}.'
        )
    locked = Policy.objects.select_for_update().filter(biz_type=DEFAULT_BIZ_TYPE).first()
    policy = locked or policy_selectors.policy_for(DEFAULT_BIZ_TYPE)
    fields = {
        f"{t}_audit_range": [s for s in RANGE_KEYS if wanted.get(s, s in policy.audit_range(t))]
        for t in MediaType.values
    }
    _policy_update(user, fields)


def _policy_update(user, data: dict) -> None:
    policy_services.policy_update(biz_type=DEFAULT_BIZ_TYPE, data=data, user=user)


# --- Parameters ---------------------------------------------------------------------------


def _choice(name: str, value: str, allowed) -> str:
    if value not in allowed:
        raise errors.bad_request(f"{name} must be one of: {', '.join(allowed)}.")
    return value


def _id(params: QueryDict, name: str) -> int:
    value = params.get(name, "")
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise errors.bad_request(f"{name} must be the id number of one.")
    return int(value)


def _int(params: QueryDict, name: str, default: int, minimum: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise errors.bad_request(f"{name} must be a whole number from {minimum}.")
    return int(value)


def _json_param(params: QueryDict, name: str, kind: type):
    try:
        value = json.loads(params.get(name, ""))
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, kind):
        raise errors.bad_request(f"{name} must be a JSON {kind.__name__}.")
    return value


def _date(params: QueryDict, name: str) -> datetime | None:
    """Alibaba writes "2018-03-01 00:00:00 +0800"; ISO 8601 is taken too (UTC if no zone)."""
    value = params.get(name)
    if not value:
        return None
    for parse in (lambda v: datetime.strptime(v, "%Y-%m-%d %H:%M:%S %z"), datetime.fromisoformat):
        try:
            date = parse(value)
        except ValueError:
            continue
        return date if date.tzinfo else date.replace(tzinfo=UTC)
    raise errors.bad_request(f'{name} is like "2018-03-01 00:00:00 +0800".')


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


ACTIONS = {
    "DescribeAuditContent": ("audit.view_result", describe_audit_content),
    "MarkAuditContent": ("audit.add_decision", mark_audit_content),
    "DescribeAuditRange": ("policies.view_policy", describe_audit_range),
    "UpdateAuditRange": ("policies.change_policy", update_audit_range),
    "DescribeAuditSetting": ("policies.view_policy", describe_audit_setting),
    "UpdateAuditSetting": ("policies.change_policy", update_audit_setting),
}
