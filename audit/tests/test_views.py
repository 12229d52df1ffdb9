import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from audit import services, views
from audit.models import Decision, Result, ResultScene
from audit.tests.factories import ResultFactory, UserFactory, user_in
from policies.models import Policy

pytestmark = pytest.mark.django_db
QUEUE = "/audit/"


@pytest.fixture
def reviewer(client):
    user = user_in("Reviewer", username="rita")
    client.force_login(user)
    return user


def shown(client, query: str = "") -> list[str]:
    response = client.get(f"{QUEUE}?{query}")
    assert response.status_code == 200
    return [r.task_id for r in (item["result"] for item in response.context["items"])]


def post_decision(client, **body):
    return client.post("/audit/decide", json.dumps(body), content_type="application/json")


# Who may use it ----------------------------------------------------------------------------


def test_anonymous_visitors_get_the_login_page(client):
    for url in (QUEUE, "/audit/counts", "/audit/items/x/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_user_without_a_role_is_refused(client):
    client.force_login(UserFactory())
    assert client.get(QUEUE).status_code == 403
    assert post_decision(client, taskIds=["x"], suggestion="pass").status_code == 403


def test_a_reviewer_cannot_open_the_admin_or_change_policies(client, reviewer):
    assert client.get("/admin/").status_code == 302
    response = client.post("/policies/default/", {"propagate": "on"})
    assert response.status_code == 403


# What surfaces ------------------------------------------------------------------------------


def test_default_queue_is_unreviewed_review_and_block_oldest_first(client, reviewer):
    now = timezone.now()
    ResultFactory(
        task_id="new",
        media_type="image",
        machine_suggestion="block",
        created_at=now - timedelta(hours=1),
    )
    ResultFactory(
        task_id="old",
        media_type="image",
        machine_suggestion="review",
        created_at=now - timedelta(days=2),
    )
    ResultFactory(task_id="passed", media_type="image", machine_suggestion="pass")
    ResultFactory(task_id="done", media_type="image", reviewed=True)
    ResultFactory(task_id="text", media_type="text")
    assert shown(client) == ["old", "new"]
    assert shown(client, "order=newest") == ["new", "old"]
    assert shown(client, "type=text") == ["text"]


def test_a_policy_can_make_pass_results_surface(client, reviewer):
    ResultFactory(task_id="p", media_type="image", machine_suggestion="pass")
    ResultFactory(task_id="chat-p", media_type="image", machine_suggestion="pass", biz_type="chat")
    assert shown(client) == []
    Policy.objects.create(biz_type="chat", image_audit_range=["pass"])
    assert shown(client) == ["chat-p"]
    Policy.objects.filter(biz_type="default").update(image_audit_range=["pass", "review"])
    assert sorted(shown(client)) == ["chat-p", "p"]


def test_every_filter(client, reviewer):
    now = timezone.now()
    alice = UserFactory(username="alice")
    a = ResultFactory(
        task_id="a",
        media_type="image",
        data_id="d-a",
        biz_type="avatars",
        created_at=now - timedelta(days=3),
        expires_at=now + timedelta(hours=3),
    )
    ResultScene.objects.create(result=a, scene="porn", label="sexy", suggestion="review", rate=80)
    ResultFactory(
        task_id="b",
        media_type="image",
        reviewed=True,
        suggestion="block",
        verdict_source="human",
        decided_by=alice,
        created_at=now - timedelta(hours=2),
    )
    ResultFactory(
        task_id="c",
        media_type="image",
        reviewed=True,
        suggestion="pass",
        machine_suggestion="review",
        verdict_source="propagated",
        created_at=now - timedelta(hours=1),
    )
    since = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    cases = {
        "status=all": ["a", "b", "c"],
        "status=reviewed": ["b", "c"],
        "status=all&suggestion=block": ["b"],
        "status=all&source=propagated": ["c"],
        "status=all&reviewer=alice": ["b"],
        "status=all&task_id=c": ["c"],
        "data_id=d-a": ["a"],
        "biz_type=avatars": ["a"],
        "scene=porn": ["a"],
        "scene=porn&label=sexy": ["a"],
        "label=normal": [],
        f"status=all&date_from={since}": ["b", "c"],
        f"status=all&date_to={since}": ["a"],
        "status=all&expiring=on": ["a"],
    }
    for query, expected in cases.items():
        assert shown(client, query) == expected, query


@pytest.mark.parametrize(
    "query",
    [
        "type=audio",
        "status=maybe",
        "suggestion=perhaps",
        "date_from=yesterday",
        "scene=antispam",  # a text scene on the image tab
        "label=not%20a%20label",
        "cursor=garbage",
        "order=sideways",
        "date_from=2026-02-02&date_to=2026-01-01",
    ],
)
def test_a_bad_filter_value_is_a_form_error_not_a_500(client, reviewer, query):
    response = client.get(f"{QUEUE}?{query}")
    assert response.status_code == 200
    assert response.context["form"].errors
    assert b"field-error" in response.content or b"form-error" in response.content


def test_keyset_pages_walk_the_whole_queue_once(client, reviewer, monkeypatch):
    moment = timezone.now() - timedelta(hours=5)
    for i in range(7):
        ResultFactory(
            task_id=f"r{i}", media_type="image", created_at=moment + timedelta(minutes=i // 2)
        )  # ties on created_at too
    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 3)
    seen, url = [], QUEUE
    while url:
        response = client.get(url)
        seen += [item["result"].task_id for item in response.context["items"]]
        cursor = response.context["next_cursor"]
        url = f"{QUEUE}?cursor={cursor}" if cursor else None
    assert seen == [f"r{i}" for i in range(7)]


def test_untrusted_text_is_escaped_and_hits_are_highlighted(client, reviewer):
    text = "<script>alert(1)</script> buy pills now"
    ResultFactory(
        task_id="x",
        media_type="text",
        text=text,
        scene_results=[
            {
                "scene": "antispam",
                "label": "contraband",
                "suggestion": "block",
                "rate": 99,
                "details": [
                    {
                        "label": "contraband",
                        "contexts": [
                            {"context": "pills", "positions": [{"startPos": 30, "endPos": 35}]}
                        ],
                    }
                ],
            }
        ],
    )
    page = client.get(f"{QUEUE}?type=text").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<mark title="contraband">pills</mark>' in page


def test_time_left_is_shown_and_the_last_day_marked(client, reviewer):
    now = timezone.now()
    ResultFactory(task_id="soon", media_type="image", expires_at=now + timedelta(hours=5))
    ResultFactory(task_id="later", media_type="image", expires_at=now + timedelta(days=3, hours=1))
    page = client.get(QUEUE).content.decode()
    assert "4h 59m left" in page or "5h 00m left" in page
    assert "3d 0h left" in page or "3d 1h left" in page
    assert page.count('class="left expiring"') == 1


def test_counts_are_the_unreviewed_items_in_the_audit_range(client, reviewer):
    cache.clear()
    ResultFactory(media_type="image", task_id="i1")
    ResultFactory(media_type="image", task_id="i2", machine_suggestion="pass")
    ResultFactory(media_type="text", task_id="t1", reviewed=True)
    counts = client.get("/audit/counts").json()
    assert {t: counts[t] for t in ("image", "video", "text")} == {"image": 1, "video": 0, "text": 0}


def test_counts_say_how_many_unreviewed_items_expire_today(client, reviewer):
    cache.clear()
    now = timezone.localtime()
    end_of_today = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    ResultFactory(
        media_type="image", task_id="today", expires_at=end_of_today - timedelta(seconds=1)
    )
    ResultFactory(
        media_type="image", task_id="tomorrow", expires_at=end_of_today + timedelta(hours=1)
    )
    ResultFactory(
        media_type="image",
        task_id="done",
        reviewed=True,
        expires_at=end_of_today - timedelta(seconds=1),
    )
    counts = client.get("/audit/counts").json()
    assert counts["image"] == 2 and counts["image:expiring"] == 1 and counts["text:expiring"] == 0


# Deciding ---------------------------------------------------------------------------------


def test_pass_from_the_page_returns_the_updated_card(client, reviewer):
    ResultFactory(task_id="one", media_type="image")
    response = post_decision(client, taskIds=["one"], suggestion="pass", versions={"one": 0})
    assert response.status_code == 200
    card = response.json()["decided"]["one"]
    assert "by rita" in card and "Pass" in card
    assert Result.objects.get().decided_by == reviewer


def test_block_from_the_page_with_a_category_and_note(client, reviewer):
    ResultFactory(task_id="one", media_type="image")
    body = {"taskIds": ["one"], "suggestion": "block", "label": "terrorism", "note": "flag"}
    assert post_decision(client, **body).status_code == 200
    decision = Decision.objects.get()
    assert (decision.label, decision.note, decision.channel) == ("terrorism", "flag", "console")


def test_the_page_tells_the_second_reviewer_who_decided_first(client, reviewer):
    other = user_in("Reviewer", username="olga")
    ResultFactory(task_id="one", media_type="image")
    services.decision_record(
        reviewer=other,
        task_ids=["one"],
        suggestion="block",
        label="ad",
        channel="console",
        versions={"one": 0},
    )
    response = post_decision(client, taskIds=["one"], suggestion="pass", versions={"one": 0})
    body = response.json()
    assert body["decided"] == {} and body["decision"] is None
    assert "Already decided by olga" in body["conflicts"]["one"]
    assert Result.objects.get().suggestion == "block"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"taskIds": "one", "suggestion": "pass"}',
        b'{"taskIds": ["one"], "suggestion": "maybe"}',
        b'{"taskIds": ["one"], "suggestion": "block"}',
        b'{"taskIds": ["one"], "suggestion": "pass", "versions": {"one": "x"}}',
        b"[]",
    ],
)
def test_bad_decision_requests_get_400_and_change_nothing(client, reviewer, body):
    ResultFactory(task_id="one", media_type="image")
    response = client.post("/audit/decide", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"]
    assert Decision.objects.count() == 0


def test_decide_needs_post_and_csrf(reviewer):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(reviewer)
    ResultFactory(task_id="one")
    response = strict.post(
        "/audit/decide",
        b'{"taskIds": ["one"], "suggestion": "pass"}',
        content_type="application/json",
    )
    assert response.status_code == 403
    assert strict.get("/audit/decide").status_code == 405


# Detail ------------------------------------------------------------------------------------


def test_the_detail_page_shows_scenes_and_the_history(client, reviewer):
    ResultFactory(task_id="d1", media_type="text", text="hello <b>there</b>")
    post_decision(client, taskIds=["d1"], suggestion="block", label="spam", note="<i>x</i>")
    page = client.get("/audit/items/d1/").content.decode()
    assert "hello &lt;b&gt;there&lt;/b&gt;" in page
    assert 'id="history"' in page and "rita" in page and "&lt;i&gt;x&lt;/i&gt;" in page
    assert client.get("/audit/items/unknown/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_roles_survive_a_database_flush():
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    call_command("flush", "--noinput")
    reviewer = Group.objects.get(name="Reviewer")
    assert {p.codename for p in reviewer.permissions.all()} == {
        "view_result",
        "view_decision",
        "add_decision",
        "view_policy",
    }
    assert Group.objects.get(name="Admin").permissions.filter(codename="change_policy").exists()
