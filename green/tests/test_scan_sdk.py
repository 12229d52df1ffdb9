"""The scan API through the official SDK (aliyun-python-sdk-green + aliyun-python-sdk-core),
against the live server."""

import io
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.utils import parameter_helper
from aliyunsdkgreen.request.v20180509 import ImageSyncScanRequest, TextScanRequest

from audit.models import Result
from audit.tests.test_propagation import picture
from green import services
from green.tests.conftest import ScanSdk
from samples import matching
from samples import services as sample_services
from samples.models import Keyword
from samples.quality import dataset
from samples.tests.test_fingerprints import crop_copies

SCENES = ["porn", "terrorism", "ad"]


def png_bytes(shift: int = 0) -> bytes:
    buffer = io.BytesIO()
    picture(shift=shift).save(buffer, "PNG")
    return buffer.getvalue()


def refused(call) -> ServerException:
    with pytest.raises(ServerException) as caught:
        call()
    return caught.value


def test_image_scan_by_url_stores_the_result_for_review(sdk, media_server):
    media_server.routes["/a.png"] = ("image/png", png_bytes())
    url = media_server.url("/a.png")
    answer = sdk.call(
        ImageSyncScanRequest.ImageSyncScanRequest,
        {"bizType": "default", "scenes": SCENES, "tasks": [{"dataId": "post-1", "url": url}]},
    )
    assert (answer["code"], answer["msg"]) == (200, "OK")
    assert answer["requestId"]
    [task] = answer["data"]
    assert (task["code"], task["dataId"], task["url"]) == (200, "post-1", url)
    assert [r["scene"] for r in task["results"]] == SCENES
    stored = Result.objects.get(task_id=task["taskId"])
    # No built-in image model: without a verdict the item goes to the Audit page.
    assert (stored.media_type, stored.machine_suggestion, stored.reviewed) == (
        "image",
        "review",
        False,
    )


def block_sample(data: bytes):
    """A porn block sample of the image `data` (sample_add's answer: sample, created)."""
    return sample_services.sample_add(
        media_type="image",
        suggestion="block",
        label="porn",
        rows=matching.image_rows(data),
        image=(data, ".png"),
    )


def test_image_scan_answers_block_customized_from_a_block_sample(sdk, media_server):
    data = png_bytes()
    block_sample(data)
    media_server.routes["/copy.png"] = ("image/png", data)
    answer = sdk.call(
        ImageSyncScanRequest.ImageSyncScanRequest,
        {"scenes": SCENES, "tasks": [{"dataId": "d", "url": media_server.url("/copy.png")}]},
    )
    porn = answer["data"][0]["results"][0]
    assert (porn["scene"], porn["suggestion"], porn["label"]) == ("porn", "block", "customized")
    assert Result.objects.get(data_id="d").verdict_source == "library"


def test_cropped_and_captioned_copies_of_a_block_sample_are_answered_block(sdk, media_server):
    # Issue 8: a blocked picture cut by 10% on every side, or given a caption bar, is still it.
    photo = dataset.draw_photo(random.Random(7), 480, 360)
    block_sample(dataset.encode(photo, "PNG"))
    copies = crop_copies(photo)
    tasks = []
    for name in ("cropped", "captioned", "captioned-resized"):
        media_server.routes[f"/{name}.jpg"] = (
            "image/jpeg",
            dataset.encode(copies[name], "JPEG", 85),
        )
        tasks.append({"dataId": name, "url": media_server.url(f"/{name}.jpg")})
    answer = sdk.call(ImageSyncScanRequest.ImageSyncScanRequest, {"scenes": SCENES, "tasks": tasks})
    for task in answer["data"]:
        porn = task["results"][0]
        assert (porn["scene"], porn["suggestion"], porn["label"]) == (
            "porn",
            "block",
            "customized",
        ), task["dataId"]
        assert Result.objects.get(data_id=task["dataId"]).verdict_source == "library"


def test_an_unreachable_image_is_answered_per_task(sdk, media_server):
    answer = sdk.call(
        ImageSyncScanRequest.ImageSyncScanRequest,
        {"scenes": ["porn"], "tasks": [{"dataId": "gone", "url": media_server.url("/none.png")}]},
    )
    [task] = answer["data"]
    assert (answer["code"], task["code"], task["dataId"]) == (200, 404, "gone")
    assert not Result.objects.exists()


def test_text_scan_answers_from_the_keyword_library(sdk):
    Keyword.objects.create(text="smuggled parrots", label="contraband", suggestion="block")
    answer = sdk.call(
        TextScanRequest.TextScanRequest,
        {
            "scenes": ["antispam"],
            "tasks": [
                {"dataId": "t1", "content": "Got SMUGGLED parrots, cheap"},
                {"dataId": "t2", "content": "My parrot says hello"},
            ],
        },
    )
    flagged, clean = answer["data"]
    assert flagged["content"] == "Got SMUGGLED parrots, cheap"
    assert (flagged["results"][0]["suggestion"], flagged["results"][0]["label"]) == (
        "block",
        "contraband",
    )
    assert clean["results"][0]["suggestion"] == "pass"
    assert Result.objects.filter(media_type="text").count() == 2


def test_an_unknown_scene_is_a_400_envelope_and_stores_nothing(sdk):
    error = refused(
        lambda: sdk.call(
            TextScanRequest.TextScanRequest,
            {"scenes": ["porn"], "tasks": [{"content": "hello"}]},
        )
    )
    assert (error.get_http_status(), error.get_error_code()) == (400, "InvalidParameter")
    assert "scenes" in error.get_error_msg()
    assert not Result.objects.exists()


def test_a_missing_field_is_a_400_envelope(sdk, live_server):
    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, {"scenes": ["antispam"]}))
    assert (error.get_http_status(), error.get_error_code()) == (400, "InvalidParameter")
    assert "tasks" in error.get_error_msg()


# --- Refused requests: each with the envelope, and nothing stored ---------------------------


def signed(sdk: ScanSdk, secret: str, body: bytes) -> tuple[str, dict]:
    """What the SDK would send for a text scan: its own signer, sent by hand so that a test
    can send it twice or change it."""
    request = TextScanRequest.TextScanRequest()
    request.set_accept_format("JSON")
    request.set_content(body)
    request.set_content_type("application/octet-stream")
    key_id = sdk.client.get_access_key()
    headers = request.get_signed_header("cn-shanghai", key_id, secret)
    return request.get_url("cn-shanghai"), headers


TEXT_BODY = b'{"scenes": ["antispam"], "tasks": [{"dataId": "r", "content": "hello there"}]}'


def assert_refused(response, status: int, error_code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert (body["code"], body["Code"]) == (status, error_code)
    assert body["requestId"] == body["RequestId"]
    assert not Result.objects.exists()


def test_a_replayed_request_is_refused(sdk, access_key, live_server):
    path, headers = signed(sdk, access_key[1], TEXT_BODY)
    first = requests.post(live_server.url + path, data=TEXT_BODY, headers=headers, timeout=10)
    assert first.status_code == 200 and first.json()["code"] == 200
    Result.objects.all().delete()
    again = requests.post(live_server.url + path, data=TEXT_BODY, headers=headers, timeout=10)
    assert_refused(again, 401, "SignatureNonceUsed")


def test_a_tampered_signature_is_refused(sdk, access_key, live_server):
    path, headers = signed(sdk, access_key[1], TEXT_BODY)
    key_id, signature = headers["Authorization"].removeprefix("acs ").split(":")
    headers["Authorization"] = f"acs {key_id}:{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    response = requests.post(live_server.url + path, data=TEXT_BODY, headers=headers, timeout=10)
    assert_refused(response, 401, "SignatureDoesNotMatch")


def test_a_changed_body_is_refused(sdk, access_key, live_server):
    path, headers = signed(sdk, access_key[1], TEXT_BODY)
    other = TEXT_BODY.replace(b"hello", b"HELLO")
    response = requests.post(live_server.url + path, data=other, headers=headers, timeout=10)
    assert_refused(response, 401, "InvalidContentMD5")


def test_a_wrong_secret_is_refused(sdk, access_key):
    sdk.client = AcsClient(access_key[0].access_key_id, "not-the-secret", "cn-shanghai")
    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, {"scenes": ["antispam"]}))
    assert (error.get_http_status(), error.get_error_code()) == (401, "SignatureDoesNotMatch")
    assert not Result.objects.exists()


def test_an_unknown_key_is_refused(sdk):
    sdk.client = AcsClient("LTAInobodyhasthiskey", "secret", "cn-shanghai")
    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, {"scenes": ["antispam"]}))
    assert (error.get_http_status(), error.get_error_code()) == (401, "InvalidAccessKeyId.NotFound")


def test_an_expired_date_is_refused(sdk, monkeypatch):
    old = format_datetime(datetime.now(UTC) - timedelta(minutes=16), usegmt=True)
    monkeypatch.setattr(parameter_helper, "get_rfc_2616_date", lambda: old)
    body = {"scenes": ["antispam"], "tasks": [{"content": "hello"}]}
    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, body))
    assert (error.get_http_status(), error.get_error_code()) == (401, "InvalidTimeStamp.Expired")
    assert not Result.objects.exists()


def test_a_revoked_key_is_refused(sdk, access_key):
    services.access_key_revoke(access_key=access_key[0])
    body = {"scenes": ["antispam"], "tasks": [{"content": "hello"}]}
    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, body))
    assert (error.get_http_status(), error.get_error_code()) == (403, "InvalidAccessKeyId.Inactive")
    assert not Result.objects.exists()


def test_a_key_is_limited_to_its_biz_types(sdk, access_key):
    key = access_key[0]
    key.biz_types = ["forum"]
    key.save()
    body = {"bizType": "shop", "scenes": ["antispam"], "tasks": [{"content": "hello"}]}
    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, body))
    assert (error.get_http_status(), error.get_error_code()) == (403, "Forbidden.BizType")
    answer = sdk.call(TextScanRequest.TextScanRequest, {**body, "bizType": "forum"})
    assert Result.objects.get(task_id=answer["data"][0]["taskId"]).biz_type == "forum"
