import base64
import io

import pytest
from PIL import Image
from rest_framework.test import APIClient

from audit.tests.factories import api_client_user, user_in
from samples.models import Sample, SampleEvent

pytestmark = pytest.mark.django_db
URL = "/api/v1/samples"


@pytest.fixture
def admin_api():
    user = user_in("Admin", username="ada", is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    return client


def png(colour=(200, 40, 40)) -> str:
    image = Image.new("RGB", (120, 90), colour)
    for x in range(0, 120, 10):
        image.paste((x * 2, 255 - x * 2, 90), (x, 0, x + 5, 90))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_add_a_text_sample_then_a_near_copy_is_linked(admin_api):
    body = {
        "type": "text",
        "suggestion": "block",
        "label": "spam",
        "item": {"content": "Cheap watches at shop.example, call +1 555 0104 now"},
    }
    first = admin_api.post(URL, body, format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["library"]["label"] == "spam" and first.json()["action"] == "added"
    body["item"]["content"] = "CHEAP watches at shop.example!! call +1 555 0104 now"
    again = admin_api.post(URL, body, format="json")
    assert again.status_code == 200 and again.json()["action"] == "linked"
    assert Sample.objects.count() == 1


def test_an_image_sample_keeps_its_own_copy_and_answers_scans(admin_api):
    body = {
        "type": "image",
        "suggestion": "block",
        "label": "terrorism",
        "item": {"content": png()},
    }
    created = admin_api.post(URL, body, format="json").json()
    sample = Sample.objects.get(id=created["id"])
    assert sample.file.name.startswith("samples/")
    # Its exact row, PDQ and 7 variants, its distinct cropped forms (at least "whole"), its
    # crophash codes and their thumbnails.
    crop_kinds = ("pdq_crop", "crop_code", "crop_thumb")
    assert sample.fingerprints.exclude(kind__in=crop_kinds).count() == 9
    assert sample.fingerprints.filter(kind="crop_thumb").count() == 1
    assert sample.fingerprints.filter(kind="crop_code").count() >= 3
    assert sample.fingerprints.filter(kind="pdq_crop", form="whole").count() == 1
    _, token = api_client_user("add_result")
    scanner = APIClient()
    scanner.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    answer = scanner.post(
        "/api/v1/scan/image",
        {"scenes": ["porn", "terrorism"], "tasks": [{"content": png()}]},
        format="json",
    ).json()["data"][0]
    verdicts = {r["scene"]: (r["suggestion"], r["label"]) for r in answer["results"]}
    assert verdicts == {"porn": ("pass", "normal"), "terrorism": ("block", "customized")}


def test_list_get_disable_and_remove_are_recorded(admin_api):
    body = {"type": "text", "suggestion": "pass", "item": {"content": "hello neighbours"}}
    sample_id = admin_api.post(URL, body, format="json").json()["id"]
    assert [s["id"] for s in admin_api.get(URL).json()] == [sample_id]
    assert admin_api.get(f"{URL}/libraries").json()[0]["suggestion"] == "pass"
    assert (
        admin_api.patch(f"{URL}/{sample_id}", {"enabled": False}, format="json").json()["enabled"]
        is False
    )
    assert admin_api.get(f"{URL}?enabled=true").json() == []
    assert admin_api.delete(f"{URL}/{sample_id}").status_code == 204
    assert admin_api.get(f"{URL}/{sample_id}").status_code == 404
    actions = list(SampleEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["added", "disabled", "removed"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "text", "suggestion": "block", "item": {"content": "x"}}, "label"),
        ({"type": "video", "suggestion": "pass", "item": {"url": "https://a.example/v"}}, "type"),
        ({"type": "image", "suggestion": "pass", "item": {"content": "@@"}}, "item"),
        ({"type": "text", "suggestion": "review", "item": {"content": "x"}}, "suggestion"),
        ({"type": "text", "suggestion": "pass", "item": {"content": 5}}, "item"),
    ],
)
def test_bad_samples_get_400_and_nothing_is_stored(admin_api, body, field):
    response = admin_api.post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Sample.objects.count() == 0


def test_reviewers_cannot_manage_samples():
    client = APIClient()
    client.force_authenticate(user_in("Reviewer"))
    assert client.get(URL).status_code == 403
    assert client.post(URL, {}, format="json").status_code == 403
