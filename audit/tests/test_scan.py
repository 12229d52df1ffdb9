import pytest
from PIL import Image
from rest_framework.test import APIClient

from audit.models import Result
from audit.tests.factories import api_client_user, user_in
from audit.tests.test_propagation import (
    SPAM,
    SPAM_COPY,
    decide,
    encoded,
    ingest,
    picture,
    texts,
)
from samples.models import Keyword

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    _, token = api_client_user("add_result", "view_result")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def scan(api, media_type, *tasks, scenes=None, biz_type="default"):
    scenes = scenes or (["antispam"] if media_type == "text" else ["porn", "terrorism", "ad"])
    body = {"bizType": biz_type, "scenes": scenes, "tasks": list(tasks)}
    response = api.post(f"/api/v1/scan/{media_type}", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def test_a_text_like_a_blocked_one_is_answered_block_from_the_library(api, run_on_commit):
    texts(run_on_commit, SPAM)
    decide(run_on_commit, user_in("Reviewer"), ["t0"])
    [answer] = scan(api, "text", {"dataId": "x", "content": SPAM_COPY.replace("CHEAP", "cheap")})
    assert answer["code"] == 200
    assert answer["results"][0]["suggestion"] == "block"
    assert answer["results"][0]["label"] == "customized"
    stored = Result.objects.get(task_id=answer["taskId"])
    assert (stored.verdict_source, stored.label, stored.reviewed) == ("library", "spam", True)


def test_a_passed_text_is_answered_pass(api, run_on_commit):
    texts(run_on_commit, "Lovely weather for the picnic on Sunday afternoon")
    decide(run_on_commit, user_in("Reviewer"), ["t0"], suggestion="pass")
    [answer] = scan(api, "text", {"content": "lovely weather for the picnic on sunday afternoon!"})
    assert answer["results"][0]["suggestion"] == "pass"


def test_the_keyword_engine_flags_texts_without_a_library_match(api):
    Keyword.objects.create(text="smuggled parrots", label="contraband", suggestion="block")
    flagged, clean = scan(
        api,
        "text",
        {"dataId": "f", "content": "Got SMUGGLED parrots, cheap"},
        {"dataId": "c", "content": "My parrot says hello"},
    )
    assert (flagged["results"][0]["suggestion"], flagged["results"][0]["label"]) == (
        "block",
        "contraband",
    )
    positions = flagged["results"][0]["details"][0]["contexts"][0]["positions"][0]
    assert (positions["startPos"], positions["endPos"]) == (4, 20)
    assert clean["results"][0]["suggestion"] == "pass"
    # Items to review surface on the Audit page, like ingested ones.
    assert Result.objects.get(data_id="f").reviewed is False


def test_upstream_results_are_passed_along(api):
    upstream = [{"scene": "porn", "label": "sexy", "suggestion": "review", "rate": 77.0}]
    [answer] = scan(api, "image", {"content": encoded(picture()), "results": upstream})
    assert answer["results"] == upstream


def test_an_image_like_a_blocked_one_is_answered_block(api, run_on_commit):
    items = [
        {
            "taskId": "a",
            "content": encoded(picture()),
            "results": [{"scene": "porn", "label": "sexy", "suggestion": "review", "rate": 80}],
        }
    ]
    ingest(run_on_commit, "image", items)
    decide(run_on_commit, user_in("Reviewer"), ["a"], label="porn")
    variant = picture().resize((200, 150)).transpose(Image.Transpose.ROTATE_180)
    [answer] = scan(api, "image", {"content": encoded(variant, "JPEG", quality=70)})
    porn = next(r for r in answer["results"] if r["scene"] == "porn")
    assert (porn["suggestion"], porn["label"]) == ("block", "customized")
    [other] = scan(api, "image", {"content": encoded(picture(shift=40).rotate(33))})
    assert {r["suggestion"] for r in other["results"]} == {"review"}


def test_an_image_url_is_fetched_with_the_guards(api, media_server):
    media_server.routes["/p.png"] = (
        "image/png",
        __import__("base64").b64decode(encoded(picture())),
    )
    ok, refused = scan(
        api,
        "image",
        {"dataId": "ok", "url": media_server.url("/p.png")},
        {"dataId": "no", "url": "http://169.254.169.254/latest"},
    )
    assert ok["code"] == 200 and Result.objects.get(data_id="ok").fetch_status == "done"
    assert refused["code"] == 400 and "address" in refused["msg"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("text", {"scenes": ["porn"], "tasks": [{"content": "x"}]}, "scenes"),
        ("text", {"scenes": ["antispam"], "tasks": []}, "tasks"),
        ("text", {"scenes": ["antispam"], "tasks": [{"content": "x" * 10_001}]}, "tasks"),
        ("image", {"scenes": ["porn"], "tasks": [{"content": "@@"}]}, "tasks"),
        ("text", {"tasks": [{"content": "x"}]}, "scenes"),
    ],
)
def test_bad_scan_requests_get_400(api, path, body, field):
    response = api.post(f"/api/v1/scan/{path}", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Result.objects.count() == 0


def test_scan_needs_a_token_with_the_permission(api):
    assert APIClient().post("/api/v1/scan/text", {}, format="json").status_code == 401
    _, token = api_client_user("view_result")
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert reader.post("/api/v1/scan/text", {}, format="json").status_code == 403
    assert api.post("/api/v1/scan/audio", {}, format="json").status_code == 404
