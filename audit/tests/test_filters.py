from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import ResultScene
from audit.tests.factories import ResultFactory, api_client_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/results"


@pytest.fixture
def api():
    _, token = api_client_user("view_result")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def task_ids(api, query: str) -> set[str]:
    response = api.get(f"{URL}?{query}")
    assert response.status_code == 200, response.json()
    return {r["taskId"] for r in response.json()["results"]}


def with_scene(task_id, scene, label, **fields):
    result = ResultFactory(task_id=task_id, **fields)
    ResultScene.objects.create(
        result=result, scene=scene, label=label, suggestion="review", rate=80
    )
    return result


def test_filters_by_type_suggestion_source_reviewed_biz_task_and_data(api):
    ResultFactory(
        task_id="t1", media_type="image", suggestion="block", biz_type="avatars", data_id="d1"
    )
    ResultFactory(
        task_id="t2", media_type="text", suggestion="pass", reviewed=True, verdict_source="human"
    )
    ResultFactory(task_id="t3", media_type="text", suggestion="review")
    assert task_ids(api, "type=image") == {"t1"}
    assert task_ids(api, "suggestion=block&suggestion=review") == {"t1", "t3"}
    assert task_ids(api, "reviewed=true") == {"t2"}
    assert task_ids(api, "reviewed=false") == {"t1", "t3"}
    assert task_ids(api, "source=human") == {"t2"}
    assert task_ids(api, "bizType=avatars") == {"t1"}
    assert task_ids(api, "taskId=t3") == {"t3"}
    assert task_ids(api, "dataId=d1") == {"t1"}


def test_filters_by_machine_suggestion(api):
    ResultFactory(task_id="m1", suggestion="pass", machine_suggestion="block")
    ResultFactory(task_id="m2", suggestion="review")
    assert task_ids(api, "machineSuggestion=block") == {"m1"}


def test_scene_and_label_must_match_the_same_scene_result(api):
    with_scene("s1", "porn", "sexy")
    both = with_scene("s2", "porn", "normal")
    ResultScene.objects.create(result=both, scene="ad", label="sexy", suggestion="pass", rate=1)
    assert task_ids(api, "scene=porn") == {"s1", "s2"}
    assert task_ids(api, "label=sexy") == {"s1", "s2"}
    assert task_ids(api, "scene=porn&label=sexy") == {"s1"}


def test_filters_by_date_range(api):
    now = timezone.now()
    ResultFactory(task_id="old", created_at=now - timedelta(days=3))
    ResultFactory(task_id="new", created_at=now - timedelta(hours=1))
    since = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert task_ids(api, f"createdAfter={since}") == {"new"}
    assert task_ids(api, f"createdBefore={since}") == {"old"}


def test_oldest_first_order_and_ties_on_created_at_page_correctly(api):
    moment = timezone.now()
    for i in range(5):
        ResultFactory(task_id=f"tie{i}", created_at=moment)
    seen, url = [], f"{URL}?order=oldest&pageSize=2"
    while url:
        body = api.get(url).json()
        seen += [r["taskId"] for r in body["results"]]
        url = body["next"]
    assert seen == [f"tie{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("type=audio", "type"),
        ("suggestion=maybe", "suggestion"),
        ("reviewed=perhaps", "reviewed"),
        ("createdAfter=yesterday", "createdAfter"),
        ("cursor=%%%", "cursor"),
        ("cursor=WyJ4IiwgMV0", "cursor"),
        ("pageSize=0", "pageSize"),
        ("pageSize=501", "pageSize"),
        ("order=sideways", "order"),
    ],
)
def test_bad_filter_values_get_400_with_the_field(api, query, field):
    response = api.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]
