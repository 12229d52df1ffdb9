import base64
import json

import pytest
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from audit.models import FetchStatus, Result, ResultScene
from audit.tests.factories import ResultFactory, api_client_user, image_bytes

URL = "/api/v1/results"
pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    _, token = api_client_user()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api


def scene(scene="porn", label="sexy", suggestion="review", rate=91.2, **extra):
    return {"scene": scene, "label": label, "suggestion": suggestion, "rate": rate, **extra}


def text_item(i=0, **extra):
    item = {
        "dataId": f"d{i}",
        "content": f"buy cheap watches {i}",
        "results": [scene("antispam", "ad", "block", 99.0)],
    }
    return {**item, **extra}


def post(client, body, **kwargs):
    return client.post(URL, body, format="json", **kwargs)


# Ingest ------------------------------------------------------------------------------------


def test_ingest_text_items_stores_them_with_worst_suggestion(client):
    body = {
        "type": "text",
        "bizType": "comments",
        "data": [
            {
                "dataId": "c1",
                "taskId": "t-1",
                "content": "hello there",
                "results": [scene("antispam", "normal", "pass", 99.0)],
            },
            {
                "dataId": "c2",
                "content": "you idiot, buy now",
                "results": [
                    scene("antispam", "abuse", "review", 70.0),
                    scene("keyword", "ad", "block", 60.0),
                ],
            },
        ],
    }
    response = post(client, body)
    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    assert [d["created"] for d in data] == [True, True]
    assert data[0]["taskId"] == "t-1"
    assert data[1]["taskId"].startswith("txt")
    assert data[1]["machineSuggestion"] == "block"
    assert data[1]["label"] == "ad"
    assert data[1]["content"] == "you idiot, buy now"
    stored = Result.objects.get(task_id=data[1]["taskId"])
    assert stored.biz_type == "comments"
    assert stored.verdict_source == "machine"
    assert (stored.expires_at - stored.created_at).days == 7
    assert ResultScene.objects.filter(result=stored).count() == 2


def test_ingest_is_idempotent_by_task_id(client):
    body = {"type": "text", "data": [text_item(taskId="same-1")]}
    first = post(client, body)
    second = post(client, body)
    assert first.status_code == second.status_code == 201
    assert second.json()["data"][0]["created"] is False
    assert Result.objects.filter(task_id="same-1").count() == 1
    assert ResultScene.objects.filter(result__task_id="same-1").count() == 1


def test_ingest_inline_image_stores_the_file(client):
    content = base64.b64encode(image_bytes((80, 60), "PNG")).decode()
    body = {"type": "image", "data": [{"dataId": "a", "content": content, "results": [scene()]}]}
    response = post(client, body)
    assert response.status_code == 201, response.json()
    result = Result.objects.get()
    assert (result.width, result.height, result.content_format) == (80, 60, "PNG")
    assert result.fetch_status == FetchStatus.DONE
    assert default_storage.exists(result.file.name)
    assert response.json()["data"][0]["file"].endswith(".png")


def test_ingest_image_url_fails_the_fetch_clearly_for_an_internal_address(
    client, django_capture_on_commit_callbacks
):
    body = {"type": "image", "data": [{"url": "http://127.0.0.1:9/x.jpg", "results": [scene()]}]}
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body)
    assert response.status_code == 201
    result = Result.objects.get()
    # The in-process fetch refused the loopback address; the result stays, with the reason.
    assert result.fetch_status == FetchStatus.FAILED
    assert "address" in result.fetch_error.lower()
    detail = client.get(f"{URL}/{result.task_id}").json()
    assert detail["fetch"]["status"] == "failed"


def test_ingest_video_with_frames(client):
    body = {
        "type": "video",
        "data": [
            {
                "dataId": "v1",
                "frames": [
                    {"offset": 0, "url": "https://cdn.example.com/f0.jpg"},
                    {
                        "offset": 5,
                        "url": "https://cdn.example.com/f5.jpg",
                        "results": [scene(suggestion="block", label="porn", rate=99.0)],
                    },
                ],
                "results": [
                    scene(
                        suggestion="block",
                        label="porn",
                        rate=99.0,
                        frames=[{"offset": 5, "label": "porn", "rate": 99.0}],
                    )
                ],
            }
        ],
    }
    response = post(client, body)
    assert response.status_code == 201, response.json()
    result = Result.objects.get()
    assert result.frames[1]["offset"] == 5
    assert result.fetch_status == FetchStatus.NONE
    assert result.machine_suggestion == "block"


# Bad input: 400 with a field message, nothing stored -------------------------------------


def assert_rejected(response, *path):
    assert response.status_code == 400, response.content
    assert Result.objects.count() == 0
    assert ResultScene.objects.count() == 0
    errors = response.json()["errors"]
    node = errors
    for key in path:
        node = node[str(key)] if isinstance(key, int) else node[key]
    assert node, errors
    return node


def test_malformed_json_is_rejected(client):
    response = client.post(URL, b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["msg"]
    assert Result.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"data": [text_item()]}, ("type",)),
        ({"type": "text"}, ("data",)),
        ({"type": "text", "data": []}, ("data",)),
        ({"type": "audio", "data": [text_item()]}, ("type",)),
        ({"type": "text", "data": "items"}, ("data",)),
        ({"type": "text", "data": [{"content": "x"}]}, ("data", 0, "results")),
        ({"type": "text", "data": [text_item(content=12)]}, ("data", 0)),
        (
            {"type": "text", "data": [text_item(results=[scene("porn", "porn", "block", 9)])]},
            ("data", 0, "results", 0, "scene"),
        ),
        (
            {"type": "text", "data": [text_item(results=[scene("antispam", "ad", "maybe", 9)])]},
            ("data", 0, "results", 0, "suggestion"),
        ),
        (
            {"type": "text", "data": [text_item(results=[scene("antispam", "ad", "block", 101)])]},
            ("data", 0, "results", 0, "rate"),
        ),
        (
            {"type": "text", "data": [text_item(results=[scene("antispam", "ad", "block", -1)])]},
            ("data", 0, "results", 0, "rate"),
        ),
        (
            {"type": "text", "data": [text_item(results=[scene("antispam", "ad", "block", "x")])]},
            ("data", 0, "results", 0, "rate"),
        ),
        (
            {"type": "text", "data": [text_item(results=[scene("antispam", "ad", "block", True)])]},
            ("data", 0, "results", 0, "rate"),
        ),
        (
            {"type": "text", "data": [text_item(results=[scene("antispam", "ad", "block", "50")])]},
            ("data", 0, "results", 0, "rate"),
        ),
        (
            {"type": "text", "data": [text_item(results=[scene("antispam", "a b", "block", 5)])]},
            ("data", 0, "results", 0, "label"),
        ),
        (
            {"type": "text", "data": [text_item(results=[{**scene("antispam"), "extra": 1}] * 21)]},
            ("data", 0, "results"),
        ),
        ({"type": "text", "data": [text_item(results=[])]}, ("data", 0, "results")),
        ({"type": "text", "data": [text_item(taskId="bad id!")]}, ("data", 0, "taskId")),
        ({"type": "text", "data": [text_item(content="x" * 10_001)]}, ("data", 0, "content")),
        ({"type": "text", "data": [text_item(url="https://example.com/a")]}, ("data", 0, "url")),
        ({"type": "image", "data": [{"results": [scene()]}]}, ("data", 0, "url")),
        (
            {"type": "image", "data": [{"url": "javascript:alert(1)", "results": [scene()]}]},
            ("data", 0, "url"),
        ),
        (
            {"type": "image", "data": [{"content": "@@notbase64@@", "results": [scene()]}]},
            ("data", 0, "content"),
        ),
        (
            {
                "type": "image",
                "data": [
                    {"content": base64.b64encode(b"plain text").decode(), "results": [scene()]}
                ],
            },
            ("data", 0, "content"),
        ),
        ({"type": "video", "data": [{"results": [scene()]}]}, ("data", 0, "url")),
        ({"type": "text", "bizType": "no spaces", "data": [text_item()]}, ("bizType",)),
    ],
)
def test_bad_input_is_rejected_with_field_errors(client, body, path):
    assert_rejected(post(client, body), *path)


def test_one_bad_item_among_good_ones_stores_nothing(client):
    items = [text_item(i) for i in range(5)]
    items[3]["results"][0]["rate"] = 150
    errors = assert_rejected(post(client, {"type": "text", "data": items}), "data")
    assert list(errors) == ["3"]  # only the bad item, by its index
    assert "rate" in errors["3"]["results"]["0"]


def test_more_than_100_items_is_rejected(client):
    body = {"type": "text", "data": [text_item(i) for i in range(101)]}
    message = assert_rejected(post(client, body), "data")
    assert "100" in message[0]


def test_duplicate_task_id_within_a_request_is_rejected(client):
    body = {"type": "text", "data": [text_item(0, taskId="dup"), text_item(1, taskId="dup")]}
    errors = assert_rejected(post(client, body), "data")
    assert list(errors) == ["1"]
    assert "Duplicate taskId" in errors["1"]["taskId"][0]


def test_oversized_base64_image_is_rejected(client, settings):
    settings.RESULTS_MAX_IMAGE_BYTES = 1000
    content = base64.b64encode(image_bytes((400, 400), "PNG", (1, 2, 3)) + b"\0" * 2000).decode()
    body = {"type": "image", "data": [{"content": content, "results": [scene()]}]}
    message = assert_rejected(post(client, body), "data", 0, "content")
    assert "larger than" in message[0]


def test_image_over_the_pixel_cap_is_rejected(client, settings):
    settings.RESULTS_MAX_IMAGE_PIXELS = 100 * 100
    content = base64.b64encode(image_bytes((200, 200), "PNG")).decode()
    body = {"type": "image", "data": [{"content": content, "results": [scene()]}]}
    assert_rejected(post(client, body), "data", 0, "content")


def test_request_over_the_body_cap_gets_413(client, settings):
    settings.RESULTS_MAX_REQUEST_BYTES = 1000
    body = {"type": "text", "data": [text_item(i, content="y" * 500) for i in range(5)]}
    response = client.post(URL, json.dumps(body), content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == 413
    assert Result.objects.count() == 0


# Permissions -------------------------------------------------------------------------------


def test_anonymous_requests_are_refused():
    api = APIClient()
    assert api.get(URL).status_code == 401
    assert api.post(URL, {"type": "text", "data": [text_item()]}, format="json").status_code == 401
    assert Result.objects.count() == 0


def test_a_reader_token_cannot_ingest():
    _, token = api_client_user("view_result")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api.post(URL, {"type": "text", "data": [text_item()]}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == 403


# Reading -----------------------------------------------------------------------------------


def test_detail_returns_the_current_state_and_404_for_unknown(client):
    result = ResultFactory(task_id="abc-1")
    body = client.get(f"{URL}/abc-1").json()
    assert body["taskId"] == "abc-1"
    assert body["suggestion"] == result.suggestion
    assert body["source"] == "machine"
    assert body["decidedBy"] is None
    assert client.get(f"{URL}/nope").status_code == 404


def test_list_pages_with_a_cursor_and_never_repeats(client):
    for i in range(7):
        ResultFactory(task_id=f"r{i}")
    seen, url = [], f"{URL}?pageSize=3"
    while url:
        body = client.get(url).json()
        seen += [r["taskId"] for r in body["results"]]
        url = body["next"]
    assert sorted(seen) == sorted(f"r{i}" for i in range(7))
    assert len(seen) == 7


def test_schema_and_docs_are_served(client, admin_client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/results" in schema.content.decode()
    assert admin_client.get("/api/docs/").status_code == 200


def test_the_openapi_schema_is_valid_and_warning_free(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    assert "/api/v1/results/mark" in (tmp_path / "s.yml").read_text()


@pytest.mark.parametrize("content", ["nul \x00 here", "lone \ud800 surrogate"])
def test_null_and_surrogate_characters_are_refused(client, content):
    body = json.dumps({"type": "text", "data": [text_item(content=content)]})  # \u-escaped
    response = client.post(URL, body, content_type="application/json")
    assert_rejected(response, "data", 0, "content")
