"""The scan API of Alibaba Content Moderation (2018-05-09) as aliyun-python-sdk-green calls it:
POST /green/<type>/<operation> with a JSON body (sent as application/octet-stream), signed
with an AccessKey (green.auth). Each endpoint translates to the product's own services and
answers in the v1 shape `{code, msg, requestId, data}`."""

import json

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import scanning
from audit.api import CanDecide, ScanPermission
from audit.models import SCENES, MediaType, Result
from audit.serializers import ScanSerializer
from green import answers, callbacks, errors, services
from green.auth import RoaSignatureAuthentication
from green.errors import GreenError
from green.models import AccessKey, AsyncImageScan, AsyncImageScanStatus
from green.serializers import AsyncCallbackSerializer, FeedbackSerializer, TaskIdsField


class GreenView(APIView):
    """Signed with an AccessKey (or the project's own token), JSON in, the envelope out."""

    authentication_classes = [RoaSignatureAuthentication, TokenAuthentication]
    permission_classes = [IsAuthenticated, ScanPermission]
    parser_classes = []  # the body is JSON whatever its Content-Type says: see body()
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return errors.exception_handler

    def initial(self, request, *args, **kwargs):
        request.green_request_id = errors.request_id_new()
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.RESULTS_MAX_REQUEST_BYTES:
            raise GreenError(413, "RequestTooLarge", "The request body is larger than the limit.")
        super().initial(request, *args, **kwargs)

    @staticmethod
    def body(request) -> dict:
        data = _json(request)
        if not isinstance(data, dict):
            raise errors.bad_request("The body must be a JSON object.")
        return data

    @staticmethod
    def check_biz_type(request, biz_type: str) -> None:
        key = request.auth
        if isinstance(key, AccessKey) and not key.allows(biz_type):
            raise GreenError(
                403, "Forbidden.BizType", f"This AccessKey may not use bizType {biz_type!r}."
            )

    def scan_request(self, request, body: dict) -> dict:
        """The validated scan request of this view's content type, its biz type allowed."""
        incoming = ScanSerializer(data=body, context={"media_type": self.media_type})
        incoming.is_valid(raise_exception=True)
        self.check_biz_type(request, incoming.validated_data["biz_type"])
        return incoming.validated_data

    @staticmethod
    def answer(request, data) -> Response:
        return Response(
            {"code": 200, "msg": "OK", "requestId": request.green_request_id, "data": data}
        )


class ScanView(GreenView):
    media_type = ""

    @extend_schema(exclude=True)
    def post(self, request):
        body = self.body(request)
        data = self.scan_request(request, body)
        scanned = scanning.results_scan(
            media_type=self.media_type,
            biz_type=data["biz_type"],
            scenes=data["scenes"],
            items=data["tasks"],
            after_store=self.after_store(request, body, data["scenes"]),
        )
        return self.answer(request, [task_answer(s, data["scenes"]) for s in scanned])

    def after_store(self, request, body: dict, scenes: list[str]):
        return None


class ImageScan(ScanView):
    media_type = MediaType.IMAGE


class TextScan(ScanView):
    media_type = MediaType.TEXT


class AsyncScanView(ScanView):
    """Submitted tasks get their taskIds; /results answers them. Videos are stored at once
    and PROCESSING until the fetch worker has their media; images given by URL are fetched
    and scanned by a worker (ImageAsyncScan)."""

    @extend_schema(exclude=True)
    def post(self, request):
        answered = super().post(request)
        answered.data["data"] = [_submitted(task) for task in answered.data["data"]]
        return answered

    def after_store(self, request, body: dict, scenes: list[str]):
        """With `callback` (and `seed`), each task's result is POSTed there when ready, and
        again when a human changes it (green.callbacks)."""
        url, seed = self.callback(body)
        if not url:
            return None
        key = request.auth if isinstance(request.auth, AccessKey) else None
        return lambda results: callbacks.task_callbacks_register(
            results=results, url=url, seed=seed, access_key=key, scenes=scenes
        )

    @staticmethod
    def callback(body: dict) -> tuple[str, str]:
        incoming = AsyncCallbackSerializer(data=body)
        incoming.is_valid(raise_exception=True)
        return incoming.validated_data.get("callback", ""), incoming.validated_data.get("seed", "")


class ImageAsyncScan(AsyncScanView):
    """Answers at once: a task given by URL is fetched and scanned by a worker, through the
    sync scan's code (green.services.image_scan_run), and PROCESSING until then. A task
    with the image inline has nothing to wait for and is scanned in the request."""

    media_type = MediaType.IMAGE

    @extend_schema(exclude=True)
    def post(self, request):
        body = self.body(request)
        data = self.scan_request(request, body)
        url, seed = self.callback(body)
        tasks = data["tasks"]
        by_url = [t for t in tasks if "image" not in t]
        inline = [t for t in tasks if "image" in t]
        scans = iter(
            services.image_scans_submit(
                biz_type=data["biz_type"],
                scenes=data["scenes"],
                items=by_url,
                callback=url,
                seed=seed,
                access_key=request.auth if isinstance(request.auth, AccessKey) else None,
            )
            if by_url
            else []
        )
        scanned = iter(
            scanning.results_scan(
                media_type=self.media_type,
                biz_type=data["biz_type"],
                scenes=data["scenes"],
                items=inline,
                after_store=self.after_store(request, body, data["scenes"]),
            )
            if inline
            else []
        )
        answered = [
            _submitted(task_answer(next(scanned), data["scenes"]))
            if "image" in task
            else _scan_submitted(next(scans))
            for task in tasks
        ]
        return self.answer(request, answered)


class VideoAsyncScan(AsyncScanView):
    media_type = MediaType.VIDEO


class CanRead(BasePermission):
    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm("audit.view_result"))


class ResultsView(GreenView):
    """The body is a JSON array of taskIds; each is answered on its own (unknown: 404)."""

    permission_classes = [IsAuthenticated, CanRead]
    media_type = ""

    @extend_schema(exclude=True)
    def post(self, request):
        task_ids = TaskIdsField().run_validation(_json(request))
        key = request.auth if isinstance(request.auth, AccessKey) else None
        found = {
            r.task_id: r
            for r in Result.objects.filter(task_id__in=task_ids, media_type=self.media_type)
            if key is None or key.allows(r.biz_type)
        }
        waiting = self.waiting([t for t in task_ids if t not in found], key)
        return self.answer(
            request,
            [
                answers.image_scan_answer(waiting[t])
                if t in waiting
                else answers.polled_answer(t, found.get(t))
                for t in task_ids
            ],
        )

    def waiting(self, task_ids: list[str], key: AccessKey | None) -> dict[str, AsyncImageScan]:
        return {}


class ImageResults(ResultsView):
    media_type = MediaType.IMAGE

    def waiting(self, task_ids: list[str], key: AccessKey | None) -> dict[str, AsyncImageScan]:
        """Async image scans not stored as results: still to be scanned, or failed."""
        scans = [
            s
            for s in AsyncImageScan.objects.filter(task_id__in=task_ids).exclude(
                status=AsyncImageScanStatus.DONE
            )
            if key is None or key.allows(s.biz_type)
        ]
        services.image_scans_resend_stale(scans)
        return {s.task_id: s for s in scans}


class VideoResults(ResultsView):
    media_type = MediaType.VIDEO


class FeedbackView(GreenView):
    """A client's correction: decided by the key's user like a reviewer's decision, so the
    item joins the sample libraries and the verdict propagates (green.services)."""

    permission_classes = [IsAuthenticated, ScanPermission, CanDecide]
    media_type = ""

    @extend_schema(exclude=True)
    def post(self, request):
        incoming = FeedbackSerializer(
            data=self.body(request), context={"media_type": self.media_type}
        )
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        key = request.auth
        if not isinstance(key, AccessKey):
            raise GreenError(403, "Forbidden", "Feedback is given with an AccessKey.")
        result = self._result(request, data)
        try:
            services.feedback_record(
                access_key=key,
                result=result,
                suggestion=data["suggestion"],
                label=data["label"],
                note=data.get("note", ""),
            )
        except DjangoValidationError as error:
            raise errors.bad_request(" ".join(error.messages)) from None
        return Response({"code": 200, "msg": "OK", "requestId": request.green_request_id})

    def _result(self, request, data: dict) -> Result:
        if task_id := data.get("task_id"):
            result = Result.objects.filter(task_id=task_id, media_type=self.media_type).first()
            if result is None or not request.auth.allows(result.biz_type):
                raise GreenError(404, "NotFound", f"No {self.media_type} task {task_id!r}.")
            return result
        # Content without a taskId: scanned and stored first, so it is decided like any item.
        self.check_biz_type(request, data["biz_type"])
        content = {"url": data["url"]} if "url" in data else {"text": data["content"]}
        scenes = [SCENES[self.media_type][0]]
        [scanned] = scanning.results_scan(
            media_type=self.media_type,
            biz_type=data["biz_type"],
            scenes=scenes,
            items=[{"data_id": data.get("data_id", ""), **content}],
        )
        if scanned.result is None:
            code, msg = answers.task_error_code(scanned.error_code)
            raise GreenError(code, msg, f"{msg}: {scanned.error}")
        return scanned.result


class ImageFeedback(FeedbackView):
    media_type = MediaType.IMAGE


class TextFeedback(FeedbackView):
    media_type = MediaType.TEXT


def _json(request):
    try:
        return json.loads(request._request.body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise errors.bad_request(f"The body is not valid JSON: {error}") from None


def _submitted(task: dict) -> dict:
    return {k: v for k, v in task.items() if k not in ("results", "content")}


def _scan_submitted(scan: AsyncImageScan) -> dict:
    answer = {"code": 200, "msg": "OK", "dataId": scan.data_id, "taskId": scan.task_id}
    return {**answer, "url": scan.item["url"]}


def task_answer(scanned: scanning.Scanned, scenes: list[str]) -> dict:
    if scanned.result is None:
        return answers.task_error(scanned.error_code, scanned.error, scanned.data_id)
    return answers.result_answer(scanned.result, scenes)
