"""Callbacks to clients, against a real HTTP receiver on loopback (see conftest)."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from audit import callbacks, services, tasks
from audit.models import CallbackDelivery, Decision, PropagationState, Result
from audit.tests.factories import ResultFactory, UserFactory, api_client_user, user_in
from audit.tests.test_propagation import SPAM, SPAM_COPY, decide, texts
from policies import services as policy_services
from policies.models import Policy

pytestmark = pytest.mark.django_db

EXTRA_KEYS = {"event", "decisionId", "deliveryId", "timestamp"}


def callbacks_to(url: str, biz_type: str = "default") -> Policy:
    policy, _ = policy_services.policy_update(
        biz_type=biz_type, data={"callback_url": url}, user=None
    )
    return policy


def expected_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def later(monkeypatch, delta: timedelta) -> None:
    """Move the clock forward, as if beat ran `delta` from now."""
    moved = timezone.now() + delta
    monkeypatch.setattr(timezone, "now", lambda: moved)


# What is sent -------------------------------------------------------------------------------


def test_a_human_decision_posts_the_new_result_signed_with_the_policy_secret(
    run_on_commit, callback_receiver
):
    policy = callbacks_to(callback_receiver.url("/hook?client=1"))
    ResultFactory(task_id="t1")
    decision = decide(run_on_commit, user_in("Reviewer", username="rita"), ["t1"])

    [(path, headers, body)] = callback_receiver.requests
    assert path == "/hook?client=1"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("ModerationConsole/")
    assert headers["X-Signature"] == expected_signature(body, policy.callback_secret)
    payload = json.loads(body)
    assert payload["event"] == "decision"
    assert payload["decisionId"] == decision.id
    assert payload["deliveryId"] == headers["X-Delivery-Id"]
    assert payload["timestamp"]
    assert (payload["taskId"], payload["suggestion"], payload["label"]) == ("t1", "block", "spam")
    assert (payload["source"], payload["decidedBy"]) == ("human", "rita")

    delivery = CallbackDelivery.objects.get()
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert delivery.last_status_code == 200 and delivery.delivered_at is not None
    assert delivery.next_attempt_at is None
    assert delivery.body.encode() == body  # the log holds the exact bytes sent
    assert (delivery.task_id, delivery.event, str(delivery.uuid)) == (
        "t1",
        "decision",
        headers["X-Delivery-Id"],
    )


def test_the_body_is_the_result_as_the_results_api_shows_it(run_on_commit, callback_receiver):
    callbacks_to(callback_receiver.url())
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_user()[1]}")
    shown = client.get("/api/v1/results/t1").json()
    payload = json.loads(callback_receiver.requests[0][2])
    assert set(payload) == set(shown) | EXTRA_KEYS
    assert {k: v for k, v in payload.items() if k not in EXTRA_KEYS} == shown


def test_a_propagation_posts_each_result_it_changed(run_on_commit, callback_receiver):
    callbacks_to(callback_receiver.url())
    texts(run_on_commit, SPAM, SPAM_COPY)
    decision = decide(run_on_commit, user_in("Reviewer"), ["t0"])
    sent = {
        (p["taskId"], p["event"], p["source"], p["decisionId"])
        for p in (json.loads(body) for _, _, body in callback_receiver.requests)
    }
    assert sent == {
        ("t0", "decision", "human", decision.id),
        ("t1", "propagation", "propagated", decision.id),
    }
    assert set(CallbackDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    assert decision.callback_deliveries.count() == 2


def test_a_policy_without_a_callback_url_sends_nothing(run_on_commit, callback_receiver):
    callbacks_to(callback_receiver.url(), biz_type="comments")  # another biz type's
    texts(run_on_commit, SPAM, SPAM_COPY)
    decide(run_on_commit, user_in("Reviewer"), ["t0"])
    assert Result.objects.get(task_id="t1").verdict_source == "propagated"
    assert not CallbackDelivery.objects.exists()
    assert callback_receiver.requests == []


# Written with the change, sent after it -----------------------------------------------------


def test_deliveries_are_written_with_the_decision_and_sent_only_after_commit(
    django_capture_on_commit_callbacks, callback_receiver
):
    callbacks_to(callback_receiver.url())
    ResultFactory(task_id="t1")
    with django_capture_on_commit_callbacks() as pending:  # committed, tasks not yet run
        services.decision_record(
            reviewer=user_in("Reviewer"),
            task_ids=["t1"],
            suggestion="block",
            label="spam",
            channel="api",
        )
    delivery = CallbackDelivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 0
    assert callback_receiver.requests == []
    assert pending  # the send task is enqueued on commit


def test_a_decision_rolled_back_after_its_deliveries_leaves_none(
    run_on_commit, callback_receiver, monkeypatch
):
    callbacks_to(callback_receiver.url())
    ResultFactory(task_id="t1")
    real = callbacks.callbacks_create

    def create_then_crash(**kwargs):
        real(**kwargs)
        raise RuntimeError("database went away")

    monkeypatch.setattr(callbacks, "callbacks_create", create_then_crash)
    with pytest.raises(RuntimeError):
        decide(run_on_commit, user_in("Reviewer"), ["t1"])
    assert not Decision.objects.exists()
    assert not CallbackDelivery.objects.exists()
    assert callback_receiver.requests == []


def test_a_rolled_back_propagation_leaves_no_deliveries(
    run_on_commit, callback_receiver, monkeypatch
):
    from samples import services as sample_services

    callbacks_to(callback_receiver.url())
    texts(run_on_commit, SPAM, SPAM_COPY)

    def crash(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(sample_services, "sample_learn", crash)
    decide(run_on_commit, user_in("Reviewer"), ["t0"])  # its propagation task fails
    assert Decision.objects.get().propagation == PropagationState.PENDING
    assert list(CallbackDelivery.objects.values_list("task_id", "event")) == [("t0", "decision")]
    assert [json.loads(b)["taskId"] for _, _, b in callback_receiver.requests] == ["t0"]


def test_a_delivery_whose_message_was_lost_is_sent_by_beat(
    django_capture_on_commit_callbacks, callback_receiver
):
    callbacks_to(callback_receiver.url())
    ResultFactory(task_id="t1")
    with django_capture_on_commit_callbacks():  # the broker loses the message
        services.decision_record(
            reviewer=user_in("Reviewer"),
            task_ids=["t1"],
            suggestion="pass",
            channel="api",
        )
    tasks.callbacks_send_due()
    assert len(callback_receiver.requests) == 1
    assert CallbackDelivery.objects.get().status == "delivered"


def test_beat_runs_the_due_job():
    from django_celery_beat.models import PeriodicTask

    from moderation_console.celery import app

    for name in ("callbacks-send-due", "callbacks-purge"):
        job = PeriodicTask.objects.get(name=name)
        assert job.enabled and job.task in app.tasks


# Retries ------------------------------------------------------------------------------------


def test_a_500_is_retried_after_its_backoff_and_then_delivered(
    run_on_commit, callback_receiver, monkeypatch
):
    callbacks_to(callback_receiver.url())
    callback_receiver.answers = [500, 200]
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    delivery = CallbackDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert "HTTP 500" in delivery.last_error and "receiver says no" in delivery.last_error
    assert delivery.next_attempt_at > delivery.created_at

    tasks.callbacks_send_due()  # not due yet
    assert len(callback_receiver.requests) == 1

    later(monkeypatch, callbacks.callback_retry_delay(1) + timedelta(seconds=1))
    tasks.callbacks_send_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert delivery.last_error == ""
    first, second = callback_receiver.requests
    assert first[2] == second[2]  # the same body, so the same signature and deliveryId
    assert first[1]["X-Delivery-Id"] == second[1]["X-Delivery-Id"]


def test_a_delivered_delivery_is_never_sent_again(run_on_commit, callback_receiver):
    callbacks_to(callback_receiver.url())
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    delivery = CallbackDelivery.objects.get()
    tasks.callback_send(delivery.id)  # a redelivered message
    tasks.callbacks_send_due()
    assert callbacks.callbacks_retry(delivery_ids=[delivery.id]) == []
    assert len(callback_receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)


def test_a_delivery_fails_after_its_last_attempt(
    run_on_commit, callback_receiver, monkeypatch, settings
):
    settings.CALLBACK_MAX_ATTEMPTS = 2
    callbacks_to(callback_receiver.url())
    callback_receiver.answers = [503, 503, 503]
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    later(monkeypatch, timedelta(hours=1))
    tasks.callbacks_send_due()
    delivery = CallbackDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 2, 503)
    assert delivery.next_attempt_at is None
    assert callbacks.callbacks_send_due() == []
    assert len(callback_receiver.requests) == 2


def test_a_redirect_is_a_failed_attempt_and_not_followed(run_on_commit, callback_receiver):
    callbacks_to(callback_receiver.url())
    callback_receiver.answers = [302]
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    delivery = CallbackDelivery.objects.get()
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)
    assert "redirects are not followed" in delivery.last_error
    assert [path for path, _, _ in callback_receiver.requests] == ["/hook"]


def test_retry_now_sends_a_failed_delivery_again(run_on_commit, callback_receiver, settings):
    settings.CALLBACK_MAX_ATTEMPTS = 1
    callbacks_to(callback_receiver.url())
    callback_receiver.answers = [500]
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    delivery = CallbackDelivery.objects.get()
    assert delivery.status == "failed"
    retried = run_on_commit(callbacks.callbacks_retry, delivery_ids=[delivery.id])
    assert retried == [delivery.id]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_the_retry_delay_grows_fourfold_up_to_eight_hours():
    delays = [callbacks.callback_retry_delay(n) for n in range(1, 8)]
    assert delays[:4] == [timedelta(minutes=m) for m in (1, 4, 16, 64)]
    assert delays[-2:] == [timedelta(hours=8)] * 2
    assert timedelta(hours=18) < sum(delays, timedelta()) < timedelta(hours=26)


# The address rules of fetching --------------------------------------------------------------


def test_loopback_is_refused_unless_allow_listed_and_not_retried(
    run_on_commit, callback_receiver, settings
):
    callbacks_to(callback_receiver.url())
    settings.FETCH_ALLOWED_NETWORKS = []  # loopback is no longer allowed
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    delivery = CallbackDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "refusing to connect to 127.0.0.1: not a public address" in delivery.last_error
    assert delivery.next_attempt_at is None and delivery.last_status_code is None
    assert callback_receiver.requests == []


def test_a_host_name_resolving_to_loopback_is_refused_too(
    run_on_commit, callback_receiver, settings
):
    port = callback_receiver.server.server_port
    callbacks_to(f"http://localhost:{port}/hook")  # a name: checked when resolved
    settings.FETCH_ALLOWED_NETWORKS = []
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    delivery = CallbackDelivery.objects.get()
    assert delivery.status == "failed" and "not a public address" in delivery.last_error
    assert callback_receiver.requests == []


def test_a_too_large_answer_is_a_failed_attempt(run_on_commit, callback_receiver, monkeypatch):
    monkeypatch.setattr(callbacks, "MAX_RESPONSE_BYTES", 4)
    callbacks_to(callback_receiver.url())
    callback_receiver.answers = [500]  # answers "receiver says no": 16 bytes
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    delivery = CallbackDelivery.objects.get()
    assert delivery.status == "pending" and "limit" in delivery.last_error


def test_turning_callbacks_off_stops_pending_deliveries(run_on_commit, callback_receiver):
    callbacks_to(callback_receiver.url())
    callback_receiver.answers = [500]
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    policy_services.policy_update(biz_type="default", data={"callback_url": ""}, user=None)
    delivery = CallbackDelivery.objects.get()
    run_on_commit(callbacks.callbacks_retry, delivery_ids=[delivery.id])
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "turned off" in delivery.last_error
    assert len(callback_receiver.requests) == 1


def test_a_rotated_secret_signs_the_next_attempt(run_on_commit, callback_receiver):
    callbacks_to(callback_receiver.url())
    callback_receiver.answers = [500]
    ResultFactory(task_id="t1")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    policy = policy_services.policy_secret_rotate(biz_type="default", user=None)
    run_on_commit(callbacks.callbacks_retry, delivery_ids=[CallbackDelivery.objects.get().id])
    _, headers, body = callback_receiver.requests[-1]
    assert headers["X-Signature"] == expected_signature(body, policy.callback_secret)


# Retention ----------------------------------------------------------------------------------


def test_purge_removes_finished_deliveries_older_than_retention_and_keeps_pending(
    run_on_commit, callback_receiver, settings
):
    callbacks_to(callback_receiver.url())
    ResultFactory(task_id="t1")
    ResultFactory(task_id="t2")
    decide(run_on_commit, user_in("Reviewer"), ["t1"])
    callback_receiver.answers = [500]
    decide(run_on_commit, user_in("Reviewer"), ["t2"])
    now = timezone.now() + timedelta(days=settings.CALLBACK_RETENTION_DAYS, seconds=1)
    assert callbacks.callbacks_purge(now=now) == 1
    assert list(CallbackDelivery.objects.values_list("task_id", "status")) == [("t2", "pending")]


# The delivery log in the admin --------------------------------------------------------------


def test_the_admin_lists_deliveries_with_filters_and_task_id_search(
    run_on_commit, callback_receiver, admin_client
):
    callbacks_to(callback_receiver.url())
    callback_receiver.answers = [500]
    ResultFactory(task_id="find-me")
    ResultFactory(task_id="other")
    decide(run_on_commit, user_in("Reviewer"), ["find-me"])
    decide(run_on_commit, user_in("Reviewer"), ["other"])
    page = admin_client.get("/admin/audit/callbackdelivery/?q=find-me").content.decode()
    assert "find-me" in page and ">other<" not in page
    pending = admin_client.get("/admin/audit/callbackdelivery/?status__exact=pending")
    assert "find-me" in pending.content.decode()
    assert "other" not in pending.content.decode()
    assert (
        admin_client.get("/admin/audit/callbackdelivery/?event__exact=decision").status_code == 200
    )
    delivery = CallbackDelivery.objects.get(task_id="find-me")
    detail = admin_client.get(f"/admin/audit/callbackdelivery/{delivery.id}/change/")
    assert detail.status_code == 200 and "HTTP 500" in detail.content.decode()
    assert admin_client.get("/admin/audit/callbackdelivery/add/").status_code == 403


def test_retry_now_in_the_admin_sends_again(
    run_on_commit, callback_receiver, client, django_capture_on_commit_callbacks
):
    callbacks_to(callback_receiver.url())
    callback_receiver.answers = [500]
    ResultFactory(task_id="t1")
    decision = decide(run_on_commit, user_in("Reviewer"), ["t1"])
    delivery = CallbackDelivery.objects.get()
    client.force_login(user_in("Admin", is_staff=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/audit/callbackdelivery/",
            {"action": "retry_now", "_selected_action": [delivery.id]},
        )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    page = client.get(f"/admin/audit/decision/{decision.id}/change/").content.decode()
    assert f"/admin/audit/callbackdelivery/?decision__id__exact={decision.id}" in page
    assert "1 delivered" in page


def test_retry_now_needs_the_change_permission(client, callback_receiver):
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_callbackdelivery"))
    client.force_login(staff)
    listing = client.get("/admin/audit/callbackdelivery/")
    assert listing.status_code == 200
    assert "retry_now" not in listing.content.decode()
