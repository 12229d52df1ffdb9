"""Async scans, their results, and feedback, through the official scan SDK."""

import base64
import json
import uuid
from datetime import timedelta

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
from django.utils import timezone

from audit import services as audit_services
from audit.models import Decision, Result
from audit.tests.test_media import write_video
from green import services
from green import tasks as green_tasks
from green.models import AsyncImageScan, Feedback
from green.tests.test_scan_sdk import SCENES, block_sample, png_bytes
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


def poll(sdk, request_class, task_ids: list[str]) -> list[dict]:
    # Two identical polls within one second (the Date's resolution) carry the same signature,
    # and the second would be refused as a replay: a nonce header (signed, like every x-acs-
    # header) tells them apart.
    request = sdk.request(request_class, task_ids)
    request.add_header("x-acs-signature-nonce", uuid.uuid4().hex)
    return json.loads(sdk.client.do_action_with_exception(request))["data"]


def poll_video(sdk, task_id: str) -> list[dict]:
    return poll(sdk, VideoAsyncScanResultsRequest.VideoAsyncScanResultsRequest, [task_id])


def poll_images(sdk, *task_ids: str) -> list[dict]:
    return poll(sdk, ImageAsyncScanResultsRequest.ImageAsyncScanResultsRequest, list(task_ids))


def submit_images(sdk, *tasks: dict, **extra) -> list[dict]:
    body = {"scenes": SCENES, "tasks": list(tasks), **extra}
    return sdk.call(ImageAsyncScanRequest.ImageAsyncScanRequest, body)["data"]


def worker_runs(task_id: str) -> None:
    """What the worker does with the task's message: twice, as a redelivery would."""
    scan = AsyncImageScan.objects.get(task_id=task_id)
    services.image_scan_run(scan_id=scan.id)
    services.image_scan_run(scan_id=scan.id)


def test_an_async_image_scan_answers_at_once_and_is_processing_until_scanned(sdk, media_server):
    celery_app.conf.task_always_eager = False  # no worker yet: the scan waits (memory broker)
    media_server.routes["/a.png"] = ("image/png", png_bytes())
    url = media_server.url("/a.png")
    [task] = submit_images(sdk, {"dataId": "a", "url": url})
    assert (task["code"], task["dataId"], task["url"]) == (200, "a", url)
    assert not Result.objects.exists()
    [pending] = poll_images(sdk, task["taskId"])
    assert (pending["code"], pending["msg"], pending["dataId"]) == (280, "PROCESSING", "a")

    worker_runs(task["taskId"])
    [done] = poll_images(sdk, task["taskId"])
    assert (done["code"], done["taskId"], done["dataId"]) == (200, task["taskId"], "a")
    assert [r["scene"] for r in done["results"]] == SCENES
    stored = Result.objects.get()  # one result however often the worker ran
    assert (stored.task_id, stored.machine_suggestion, stored.file.name != "") == (
        task["taskId"],
        "review",
        True,
    )
    assert stored.fingerprints.exists()


def test_a_pending_scan_nobody_polls_is_sent_again_by_the_beat_job(sdk, media_server):
    celery_app.conf.task_always_eager = False  # its message is never consumed: as if lost
    media_server.routes["/a.png"] = ("image/png", png_bytes())
    [lost] = submit_images(sdk, {"dataId": "a", "url": media_server.url("/a.png")})
    [recent] = submit_images(sdk, {"dataId": "b", "url": media_server.url("/a.png")})
    AsyncImageScan.objects.filter(task_id=lost["taskId"]).update(
        created_at=timezone.now() - services.IMAGE_SCAN_RESEND_AFTER - timedelta(seconds=1)
    )
    celery_app.conf.task_always_eager = True  # the re-sent message runs at once

    assert green_tasks.image_scans_resend_pending() == 1
    assert Result.objects.get().task_id == lost["taskId"]
    assert AsyncImageScan.objects.get(task_id=recent["taskId"]).status == "pending"
    assert green_tasks.image_scans_resend_pending() == 0  # done scans are not sent again


def test_an_async_image_scan_answers_from_the_sample_libraries(sdk, media_server):
    data = png_bytes()
    block_sample(data)
    media_server.routes["/copy.png"] = ("image/png", data)
    celery_app.conf.task_always_eager = False
    [task] = submit_images(sdk, {"dataId": "d", "url": media_server.url("/copy.png")})
    worker_runs(task["taskId"])

    [done] = poll_images(sdk, task["taskId"])
    porn = done["results"][0]
    assert (porn["scene"], porn["suggestion"], porn["label"]) == ("porn", "block", "customized")
    assert Result.objects.get(task_id=task["taskId"]).verdict_source == "library"


def test_an_async_image_that_cannot_be_fetched_is_answered_with_its_error(sdk, media_server):
    celery_app.conf.task_always_eager = False
    [task] = submit_images(sdk, {"dataId": "gone", "url": media_server.url("/none.png")})
    worker_runs(task["taskId"])
    [failed] = poll_images(sdk, task["taskId"])
    assert (failed["code"], failed["taskId"], failed["dataId"]) == (404, task["taskId"], "gone")
    assert failed["msg"].startswith("NOT_FOUND")
    assert not Result.objects.exists()


def test_a_resubmitted_task_id_keeps_its_first_submission(sdk, media_server):
    celery_app.conf.task_always_eager = False
    media_server.routes["/a.png"] = ("image/png", png_bytes())
    first = submit_images(
        sdk, {"dataId": "a", "taskId": "img-mine", "url": media_server.url("/a.png")}
    )
    again = submit_images(
        sdk, {"dataId": "b", "taskId": "img-mine", "url": media_server.url("/b.png")}
    )
    assert first[0]["taskId"] == again[0]["taskId"] == "img-mine"
    assert again[0]["dataId"] == "a"
    assert AsyncImageScan.objects.count() == 1


def test_inline_and_url_images_are_answered_in_their_order(sdk, media_server):

    celery_app.conf.task_always_eager = False
    media_server.routes["/a.png"] = ("image/png", png_bytes())
    inline = base64.b64encode(png_bytes(shift=9)).decode()
    by_url, by_content = submit_images(
        sdk, {"dataId": "u", "url": media_server.url("/a.png")}, {"dataId": "i", "content": inline}
    )
    assert (by_url["dataId"], by_content["dataId"]) == ("u", "i")
    pending, done = poll_images(sdk, by_url["taskId"], by_content["taskId"])
    assert (pending["code"], done["code"]) == (280, 200)  # inline: nothing to fetch or wait for


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


@pytest.mark.parametrize("status", [503, 429])
def test_an_image_the_server_cannot_give_now_is_tried_again(sdk, media_server, status):
    celery_app.conf.task_always_eager = False
    media_server.routes["/a.png"] = ("image/png", png_bytes())
    media_server.statuses["/a.png"] = status
    [task] = submit_images(sdk, {"dataId": "a", "url": media_server.url("/a.png")})
    scan = AsyncImageScan.objects.get(task_id=task["taskId"])
    with pytest.raises(services.ImageScanRetry):
        services.image_scan_run(scan_id=scan.id)
    scan.refresh_from_db()
    assert (scan.status, scan.attempts, scan.error_code) == ("pending", 1, "bad_status")
    [pending] = poll_images(sdk, task["taskId"])
    assert pending["code"] == 280
    del media_server.statuses["/a.png"]  # the server is back
    services.image_scan_run(scan_id=scan.id)
    [done] = poll_images(sdk, task["taskId"])
    assert done["code"] == 200 and [r["scene"] for r in done["results"]] == SCENES


def test_an_image_that_is_not_there_fails_at_once(sdk, media_server):
    celery_app.conf.task_always_eager = False
    [task] = submit_images(sdk, {"dataId": "a", "url": media_server.url("/gone.png")})
    services.image_scan_run(scan_id=AsyncImageScan.objects.get(task_id=task["taskId"]).id)
    [failed] = poll_images(sdk, task["taskId"])
    assert failed["code"] != 280 and AsyncImageScan.objects.get().status == "failed"
