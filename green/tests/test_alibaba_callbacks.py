"""Callbacks in Alibaba's form (checksum + content, form-encoded), sent by the official scan
SDK's async scans and by human review, against a real HTTP receiver on loopback."""

import hashlib
import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from alibabacloud_green20170823 import models as green_models
from alibabacloud_tea_openapi.exceptions import ClientException
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkgreen.request.v20180509 import (
    ImageAsyncScanRequest,
    TextFeedbackRequest,
    VideoAsyncScanRequest,
)
from django.utils import timezone

from audit import services as audit_services
from audit import tasks
from audit.models import CallbackDelivery, Decision, Result
from audit.tests.factories import ResultFactory, user_in
from audit.tests.test_media import write_video
from green import callbacks, services
from green.models import AsyncImageScan, TaskCallback
from green.tests.test_console_sdk import console
from green.tests.test_scan_sdk import SCENES, png_bytes
from moderation_console.celery import app as celery_app

UID = "1234567890123456"
SEED = "s33d_for_checks"


@pytest.fixture(autouse=True)
def account_uid(settings):
    settings.GREEN_CALLBACK_UID = UID


def received(receiver) -> list[dict]:
    """Each callback as the receiver checks it: the checksum over uid + seed + content."""
    forms = []
    for _path, headers, body in receiver.requests:
        assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")
        assert "X-Signature" not in headers
        form = {k: v for k, [v] in parse_qs(body.decode(), strict_parsing=True).items()}
        expected = hashlib.sha256((UID + SEED + form["content"]).encode()).hexdigest()
        assert form["checksum"] == expected
        forms.append(json.loads(form["content"]))
    return forms


def async_image(sdk, media_server, receiver, **extra) -> str:
    media_server.routes["/a.png"] = ("image/png", png_bytes())
    body = {
        "scenes": SCENES,
        "callback": receiver.url("/green-hook"),
        "seed": SEED,
        "tasks": [{"dataId": "a", "url": media_server.url("/a.png")}],
        **extra,
    }
    return sdk.call(ImageAsyncScanRequest.ImageAsyncScanRequest, body)["data"][0]["taskId"]


def later(monkeypatch, delta: timedelta) -> None:
    moved = timezone.now() + delta
    monkeypatch.setattr(timezone, "now", lambda: moved)


def test_an_async_image_scan_posts_its_result_with_the_checksum(
    sdk, media_server, callback_receiver
):
    task_id = async_image(sdk, media_server, callback_receiver)

    [content] = received(callback_receiver)
    assert callback_receiver.requests[0][0] == "/green-hook"
    assert (content["code"], content["taskId"], content["dataId"]) == (200, task_id, "a")
    assert [r["scene"] for r in content["results"]] == SCENES
    delivery = CallbackDelivery.objects.get()
    assert (delivery.form, delivery.event, delivery.status) == ("alibaba", "scan", "delivered")
    assert delivery.decision is None and delivery.policy is None


def test_an_async_image_posts_its_result_once_the_worker_scanned_it(
    sdk, media_server, callback_receiver
):
    celery_app.conf.task_always_eager = False  # no worker yet: the scan waits (memory broker)
    task_id = async_image(sdk, media_server, callback_receiver)
    assert not CallbackDelivery.objects.exists()  # not scanned: nothing to say yet

    celery_app.conf.task_always_eager = True  # the delivery is sent in-process
    scan = AsyncImageScan.objects.get(task_id=task_id)
    services.image_scan_run(scan_id=scan.id)  # the worker
    services.image_scan_run(scan_id=scan.id)  # run twice: still one callback

    [content] = received(callback_receiver)
    assert (content["code"], content["taskId"], content["dataId"]) == (200, task_id, "a")
    assert [r["scene"] for r in content["results"]] == SCENES
    assert TaskCallback.objects.get().task_id == task_id  # a later review goes there too


def test_an_async_image_that_cannot_be_fetched_posts_its_error(
    sdk, media_server, callback_receiver
):
    celery_app.conf.task_always_eager = False
    body = {
        "scenes": SCENES,
        "callback": callback_receiver.url("/green-hook"),
        "seed": SEED,
        "tasks": [{"dataId": "gone", "url": media_server.url("/none.png")}],
    }
    task_id = sdk.call(ImageAsyncScanRequest.ImageAsyncScanRequest, body)["data"][0]["taskId"]
    celery_app.conf.task_always_eager = True
    services.image_scan_run(scan_id=AsyncImageScan.objects.get(task_id=task_id).id)

    [content] = received(callback_receiver)
    assert (content["code"], content["taskId"], content["dataId"]) == (404, task_id, "gone")
    delivery = CallbackDelivery.objects.get()
    assert (delivery.task_id, delivery.result, delivery.status) == (task_id, None, "delivered")


def test_a_video_posts_its_result_once_fetched(sdk, media_server, callback_receiver, tmp_path):
    celery_app.conf.task_always_eager = False  # no worker yet: the fetch waits (memory broker)
    media_server.routes["/clip.mp4"] = (
        "video/mp4",
        write_video(tmp_path / "c.mp4", "mpeg4").read_bytes(),
    )
    submitted = sdk.call(
        VideoAsyncScanRequest.VideoAsyncScanRequest,
        {
            "scenes": ["porn"],
            "callback": callback_receiver.url(),
            "seed": SEED,
            "tasks": [{"dataId": "v", "url": media_server.url("/clip.mp4")}],
        },
    )
    task_id = submitted["data"][0]["taskId"]
    assert not CallbackDelivery.objects.exists()  # not ready: nothing to say yet

    celery_app.conf.task_always_eager = True
    result = Result.objects.get(task_id=task_id)
    audit_services.result_fetch(result_id=result.id)  # the worker
    audit_services.result_fetch(result_id=result.id)  # run twice: still one callback

    [content] = received(callback_receiver)
    assert (content["code"], content["taskId"], content["dataId"]) == (200, task_id, "v")
    assert content["results"][0]["scene"] == "porn"


def test_a_failed_attempt_is_retried_when_due(sdk, media_server, callback_receiver, monkeypatch):
    callback_receiver.answers = [500]
    async_image(sdk, media_server, callback_receiver)
    delivery = CallbackDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)

    later(monkeypatch, timedelta(minutes=2))
    tasks.callbacks_send_due()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    first, second = callback_receiver.requests
    assert first[2] == second[2]  # the same bytes, the same checksum
    assert len(received(callback_receiver)) == 2


def test_a_callback_to_an_internal_address_is_refused_at_the_scan(
    sdk, media_server, callback_receiver, settings
):
    media_server.routes["/a.png"] = ("image/png", png_bytes())
    internal = "http://10.0.0.7/hook"
    with pytest.raises(ServerException) as refused:
        sdk.call(
            ImageAsyncScanRequest.ImageAsyncScanRequest,
            {
                "scenes": SCENES,
                "callback": internal,
                "seed": SEED,
                "tasks": [{"url": media_server.url("/a.png")}],
            },
        )
    assert refused.value.http_status == 400
    assert "callback" in refused.value.message
    assert not Result.objects.exists() and not TaskCallback.objects.exists()


def test_a_callback_without_a_seed_is_refused(sdk, media_server, callback_receiver):
    with pytest.raises(ServerException) as refused:
        async_image(sdk, media_server, callback_receiver, seed="")
    assert refused.value.http_status == 400
    assert not Result.objects.exists()


def test_an_address_refused_at_send_time_fails_at_once(
    sdk, media_server, callback_receiver, settings
):
    celery_app.conf.task_always_eager = False
    task_id = async_image(sdk, media_server, callback_receiver)
    services.image_scan_run(scan_id=AsyncImageScan.objects.get(task_id=task_id).id)  # worker
    settings.FETCH_ALLOWED_NETWORKS = []  # loopback is refused from now on
    celery_app.conf.task_always_eager = True
    tasks.callbacks_send_due()

    delivery = CallbackDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "address" in delivery.last_error
    assert callback_receiver.requests == []


def test_a_human_decision_posts_the_review_to_the_scan_callback(
    sdk, media_server, callback_receiver
):
    task_id = async_image(sdk, media_server, callback_receiver)
    audit_services.decision_record(  # committed: its callbacks are sent
        reviewer=user_in("Reviewer"),
        task_ids=[task_id],
        suggestion="block",
        label="porn",
        channel="console",
    )

    scan, review = received(callback_receiver)
    assert review["scanResult"]["taskId"] == task_id
    assert review["scanResult"]["results"] == scan["results"]  # the machine's, as scanned
    assert review["auditResult"] == {"suggestion": "block", "labels": ["porn"]}
    delivery = CallbackDelivery.objects.get(event="decision")
    assert (delivery.form, delivery.decision) == ("alibaba", Decision.objects.get())


def test_feedback_posts_the_review_and_is_recorded_as_feedback(sdk, callback_receiver):
    from aliyunsdkgreen.request.v20180509 import TextScanRequest

    answer = sdk.call(
        TextScanRequest.TextScanRequest,
        {"scenes": ["antispam"], "tasks": [{"dataId": "t", "content": "cheap watches"}]},
    )
    task_id = answer["data"][0]["taskId"]
    callbacks.task_callbacks_register(
        results=[Result.objects.get(task_id=task_id)],
        url=callback_receiver.url(),
        seed=SEED,
        access_key=None,
        scenes=["antispam"],
    )
    sdk.call(TextFeedbackRequest.TextFeedbackRequest, {"taskId": task_id, "label": "spam"})

    assert Decision.objects.get().channel == "feedback"
    review = received(callback_receiver)[-1]
    assert review["auditResult"] == {"suggestion": "block", "labels": ["spam"]}


def test_the_audit_setting_callback_gets_review_results(live_server, callback_receiver):
    from green import services

    key, secret = services.access_key_issue(user=user_in("Admin"), name="console")
    api = console(live_server, key.access_key_id, secret)
    api.update_audit_setting(
        green_models.UpdateAuditSettingRequest(callback=callback_receiver.url(), seed=SEED)
    )
    result = ResultFactory(task_id="t-setting")
    audit_services.decision_record(  # committed: its callbacks are sent
        reviewer=user_in("Reviewer"),
        task_ids=["t-setting"],
        suggestion="pass",
        label="",
        channel="console",
    )

    [review] = received(callback_receiver)
    assert review["scanResult"]["taskId"] == result.task_id
    assert review["auditResult"] == {"suggestion": "pass", "labels": []}


def test_an_internal_audit_setting_callback_is_refused(live_server, settings):
    from green import services

    settings.FETCH_ALLOWED_NETWORKS = []
    key, secret = services.access_key_issue(user=user_in("Admin"), name="console")
    api = console(live_server, key.access_key_id, secret)
    with pytest.raises(ClientException) as refused:
        api.update_audit_setting(
            green_models.UpdateAuditSettingRequest(callback="http://127.0.0.1:9/hook", seed=SEED)
        )
    assert refused.value.code == "InvalidParameter"
