import pytest
from rest_framework.test import APIClient

from audit.models import Decision, Result
from audit.tests.factories import ResultFactory, api_client_user, user_in

pytestmark = pytest.mark.django_db
URL = "/api/v1/results/mark"


@pytest.fixture
def api():
    _, token = api_client_user("add_decision", "view_result")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_mark_blocks_and_the_result_shows_the_human_decision(api):
    ResultFactory(task_id="a", media_type="image")
    body = {"taskIds": ["a"], "suggestion": "block", "label": "porn", "note": "n"}
    response = api.post(URL, body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["decided"][0]["suggestion"] == "block" and data["conflicts"] == []
    decision = Decision.objects.get(id=data["decisionId"])
    assert (decision.channel, decision.note) == ("api", "n")
    state = api.get("/api/v1/results/a").json()
    assert (state["suggestion"], state["label"], state["source"], state["reviewed"]) == (
        "block",
        "porn",
        "human",
        True,
    )
    assert state["decidedBy"] == decision.reviewer.username


def test_mark_reports_conflicts_and_409_when_nothing_was_decided(api):
    ResultFactory(task_id="a", media_type="image")
    ResultFactory(task_id="b", media_type="image")
    first = api.post(URL, {"taskIds": ["a"], "suggestion": "pass"}, format="json")
    assert first.status_code == 200
    both = api.post(
        URL, {"taskIds": ["a", "b"], "suggestion": "block", "label": "ad"}, format="json"
    ).json()
    assert [r["taskId"] for r in both["decided"]] == ["b"]
    assert both["conflicts"][0]["taskId"] == "a" and both["conflicts"][0]["suggestion"] == "pass"
    again = api.post(URL, {"taskIds": ["a"], "suggestion": "block", "label": "ad"}, format="json")
    assert again.status_code == 409
    with_version = api.post(
        URL,
        {"taskIds": ["a"], "suggestion": "block", "label": "ad", "versions": {"a": 1}},
        format="json",
    )
    assert with_version.status_code == 200  # it saw the latest state: a deliberate re-decision
    assert Result.objects.get(task_id="a").suggestion == "block"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"suggestion": "pass"}, "taskIds"),
        ({"taskIds": [], "suggestion": "pass"}, "taskIds"),
        ({"taskIds": "a", "suggestion": "pass"}, "taskIds"),
        ({"taskIds": ["a"], "suggestion": "review"}, "suggestion"),
        ({"taskIds": ["a"], "suggestion": "block"}, "label"),
        ({"taskIds": ["a"], "suggestion": "block", "label": "spam"}, "label"),
        ({"taskIds": ["missing"], "suggestion": "pass"}, "taskIds"),
        ({"taskIds": ["a"], "suggestion": "pass", "note": 5}, "note"),
        ({"taskIds": ["a"], "suggestion": "pass", "versions": {"a": -1}}, "versions"),
    ],
)
def test_bad_mark_requests_get_400_with_the_field(api, body, field):
    ResultFactory(task_id="a", media_type="image")
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Decision.objects.count() == 0


def test_mark_needs_the_decision_permission():
    _, token = api_client_user("view_result")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    ResultFactory(task_id="a")
    assert (
        client.post(URL, {"taskIds": ["a"], "suggestion": "pass"}, format="json").status_code == 403
    )
    assert APIClient().post(URL, {}, format="json").status_code == 401


def test_the_admin_action_records_a_decision(client):
    admin = user_in("Admin", username="ada", is_staff=True)
    client.force_login(admin)
    a = ResultFactory(task_id="a", media_type="image")
    b = ResultFactory(task_id="b", media_type="image", verdict_source="human", reviewed=True)
    response = client.post(
        "/admin/audit/result/",
        {
            "action": "mark_block_terrorism",
            "_selected_action": [a.id, b.id],
        },
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert any("Marked 1 result(s) block" in m for m in messages)
    assert any("already decided" in m for m in messages)
    decision = Decision.objects.get()
    assert (decision.channel, decision.label, decision.reviewer) == ("admin", "terrorism", admin)


def test_the_admin_action_refuses_a_category_the_policy_does_not_offer(client):
    client.force_login(user_in("Admin", username="ada", is_staff=True))
    a = ResultFactory(task_id="a", media_type="image")
    response = client.post(
        "/admin/audit/result/",
        {
            "action": "mark_block_spam",
            "_selected_action": [a.id],
        },
        follow=True,
    )
    assert any("not a category" in str(m) for m in response.context["messages"])
    assert Decision.objects.count() == 0
