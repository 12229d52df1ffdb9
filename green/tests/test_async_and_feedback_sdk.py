"""Async scans, their results, and feedback, through the official scan SDK."""

import json
import uuid

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkgreen.request.v20180509 import (
    ImageAsyncScanRequest,
    ImageAsyncScanResultsRequest,
    ImageScanFeedbackRequest,
    ImageSyncScanRequest,
    TextFeedbackRequest,
    TextScanRequest,
    VideoAsyncScanRequest,
    VideoAsyncScanResultsRequest,
)

from audit import services as audit_services
from audit.models import Decision, Result
from audit.tests.test_media import write_video
from green.models import Feedback
from green.tests.test_scan_sdk import SCENES, png_bytes
from moderation_console.celery import app as celery_app

SPAMMY = "Visit our shop for the cheapest replica watches, free delivery today"


def test_image_async_scan_then_results(sdk, media_server):
    media_server.routes["/a.png"] = ("image/png", png_bytes())
    submitted = sdk.call(
        ImageAsyncScanRequest.ImageAsyncScanRequest,
        {"scenes": SCENES, "tasks": [{"dataId": "a", "url": media_server.url("/a.png")}]},
    )
    [task] = submitted["data"]
    assert (task["code"], task["dataId"]) == (200, "a") and "results" not in task
    polled = sdk.call(
        ImageAsyncScanResultsRequest.ImageAsyncScanResultsRequest, [task["taskId"], "img-none"]
    )
    found, unknown = polled["data"]
    assert (found["code"], found["taskId"]) == (200, task["taskId"])
    assert [r["scene"] for r in found["results"]] == SCENES
    assert (unknown["code"], unknown["taskId"]) == (404, "img-none")


def poll_video(sdk, task_id: str) -> list[dict]:
    # Two identical polls within one second (the Date's resolution) carry the same signature,
    # and the second would be refused as a replay: a nonce header (signed, like every x-acs-
    # header) tells them apart.
    request = sdk.request(VideoAsyncScanResultsRequest.VideoAsyncScanResultsRequest, [task_id])
    request.add_header("x-acs-signature-nonce", uuid.uuid4().hex)
    return json.loads(sdk.client.do_action_with_exception(request))["data"]


def test_video_async_scan_is_processing_until_fetched(sdk, media_server, tmp_path):
    celery_app.conf.task_always_eager = False  # no worker yet: the fetch waits (memory broker)
    clip = write_video(tmp_path / "clip.mp4", "mpeg4").read_bytes()
    media_server.routes["/clip.mp4"] = ("video/mp4", clip)
    submitted = sdk.call(
        VideoAsyncScanRequest.VideoAsyncScanRequest,
        {"scenes": ["porn"], "tasks": [{"dataId": "v", "url": media_server.url("/clip.mp4")}]},
    )
    task_id = submitted["data"][0]["taskId"]
    [pending] = poll_video(sdk, task_id)
    assert (pending["code"], pending["msg"]) == (280, "PROCESSING")

    audit_services.result_fetch(result_id=Result.objects.get(task_id=task_id).id)  # the worker
    [done] = poll_video(sdk, task_id)
    assert (done["code"], done["dataId"]) == (200, "v")
    assert done["results"][0]["scene"] == "porn"


def test_video_frames_are_answered_at_once(sdk, media_server):
    frames = [{"url": media_server.url("/f0.jpg"), "offset": 0}]
    submitted = sdk.call(
        VideoAsyncScanRequest.VideoAsyncScanRequest,
        {"scenes": ["porn"], "tasks": [{"dataId": "vf", "frames": frames}]},
    )
    poll = VideoAsyncScanResultsRequest.VideoAsyncScanResultsRequest
    [done] = sdk.call(poll, [submitted["data"][0]["taskId"]])["data"]
    assert done["code"] == 200


def test_text_feedback_teaches_the_library(sdk, access_key):
    first = sdk.call(
        TextScanRequest.TextScanRequest,
        {"scenes": ["antispam"], "tasks": [{"dataId": "1", "content": SPAMMY}]},
    )
    [task] = first["data"]
    assert task["results"][0]["suggestion"] == "pass"
    answer = sdk.call(
        TextFeedbackRequest.TextFeedbackRequest, {"taskId": task["taskId"], "label": "spam"}
    )
    assert (answer["code"], answer["msg"]) == (200, "OK")
    again = sdk.call(
        TextScanRequest.TextScanRequest,
        {"scenes": ["antispam"], "tasks": [{"dataId": "2", "content": SPAMMY + "!"}]},
    )
    result = again["data"][0]["results"][0]
    assert (result["suggestion"], result["label"]) == ("block", "customized")
    feedback = Feedback.objects.get()
    assert (feedback.access_key, feedback.task_id) == (access_key[0], task["taskId"])
    decision = Decision.objects.get()
    assert (decision.reviewer, decision.suggestion, decision.label) == (
        access_key[0].user,
        "block",
        "spam",
    )
    decided = Result.objects.get(task_id=task["taskId"])
    assert (decided.suggestion, decided.verdict_source) == ("block", "human")


def test_text_feedback_without_a_task_adds_a_pass_sample(sdk):
    sdk.call(TextFeedbackRequest.TextFeedbackRequest, {"content": SPAMMY, "label": "normal"})
    answer = sdk.call(
        TextScanRequest.TextScanRequest,
        {"scenes": ["antispam"], "tasks": [{"dataId": "x", "content": SPAMMY}]},
    )
    result = answer["data"][0]["results"][0]
    assert (result["suggestion"], result["label"]) == ("pass", "customized")


def test_image_feedback_teaches_the_library(sdk, media_server):
    data = png_bytes()
    media_server.routes["/a.png"] = ("image/png", data)
    media_server.routes["/again.png"] = ("image/png", data)
    first = sdk.call(
        ImageSyncScanRequest.ImageSyncScanRequest,
        {"scenes": SCENES, "tasks": [{"dataId": "1", "url": media_server.url("/a.png")}]},
    )
    task_id = first["data"][0]["taskId"]
    sdk.call(
        ImageScanFeedbackRequest.ImageScanFeedbackRequest,
        {"taskId": task_id, "suggestion": "block", "scenes": ["porn"], "note": "nsfw"},
    )
    again = sdk.call(
        ImageSyncScanRequest.ImageSyncScanRequest,
        {"scenes": SCENES, "tasks": [{"dataId": "2", "url": media_server.url("/again.png")}]},
    )
    porn = again["data"][0]["results"][0]
    assert (porn["scene"], porn["suggestion"], porn["label"]) == ("porn", "block", "customized")
    assert Decision.objects.get().note == "nsfw"


def test_feedback_on_an_unknown_task_is_refused(sdk):
    with pytest.raises(ServerException) as caught:
        sdk.call(TextFeedbackRequest.TextFeedbackRequest, {"taskId": "txt-nope", "label": "spam"})
    assert (caught.value.get_http_status(), caught.value.get_error_code()) == (404, "NotFound")
    assert not Decision.objects.exists()
