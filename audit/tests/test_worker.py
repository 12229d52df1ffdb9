"""Tasks through a real Celery worker: Redis when CELERY_BROKER_URL is set (CI), otherwise
Celery's in-memory broker, so the test command also works with no services."""

import uuid
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from rest_framework.test import APIClient

from audit import tasks
from audit.models import FetchStatus, Result
from audit.tests.factories import api_client_user, image_bytes
from audit.tests.processes import broker_reset, wait_for
from moderation_console.celery import app as celery_app


@pytest.fixture
def celery_worker():
    queue = f"test-{uuid.uuid4().hex[:8]}"  # Redis keeps queues between runs: start clean
    conf = celery_app.conf
    saved = {k: conf[k] for k in ("task_default_queue", "task_always_eager")}
    conf.task_default_queue = queue
    conf.task_always_eager = False
    broker_reset()
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, queues=[queue], shutdown_timeout=10
    ):
        yield
    conf.update(saved)
    broker_reset()


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_an_ingested_image_url_is_fetched_by_the_worker(celery_worker, media_server):
    media_server.routes["/photo.jpg"] = ("image/jpeg", image_bytes((40, 30)))
    _, token = api_client_user()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = {
        "type": "image",
        "data": [
            {
                "taskId": "worker-1",
                "url": media_server.url("/photo.jpg"),
                "results": [{"scene": "porn", "label": "sexy", "suggestion": "review", "rate": 80}],
            }
        ],
    }
    response = api.post("/api/v1/results", body, format="json")
    assert response.status_code == 201
    # The request only enqueued the fetch; the worker does it after the commit.
    assert response.json()["data"][0]["fetch"]["status"] == "pending"
    assert wait_for(lambda: Result.objects.get(task_id="worker-1").fetch_status != "pending")
    result = Result.objects.get(task_id="worker-1")
    assert result.fetch_status == FetchStatus.DONE, result.fetch_error
    assert (result.width, result.height) == (40, 30)


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_decision_on_the_audit_page_propagates_through_the_worker(celery_worker, client):
    from audit.tests.factories import user_in
    from samples.models import Sample

    _, token = api_client_user()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    scene = {"scene": "antispam", "label": "ad", "suggestion": "review", "rate": 80}
    body = {
        "type": "text",
        "data": [
            {
                "taskId": "a",
                "content": "Cheap watches at shop.example, call +1 555 0104",
                "results": [scene],
            },
            {
                "taskId": "a2",
                "content": "CHEAP wаtches at shop.example!! call +1 555 0199",
                "results": [scene],
            },
        ],
    }
    assert api.post("/api/v1/results", body, format="json").status_code == 201
    assert wait_for(
        lambda: Result.objects.filter(fingerprints__isnull=False).distinct().count() == 2
    )
    client.force_login(user_in("Reviewer", username="rita"))
    response = client.post(
        "/audit/decide",
        {"taskIds": ["a"], "suggestion": "block", "label": "spam", "versions": {"a": 0}},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert wait_for(lambda: Result.objects.get(task_id="a2").verdict_source == "propagated")
    copy = Result.objects.get(task_id="a2")
    assert (copy.suggestion, copy.label, copy.decided_by.username) == ("block", "spam", "rita")
    assert Sample.objects.get().library.label == "spam"
    # From then on the moderation API answers with the decision for another variant.
    scan = {
        "scenes": ["antispam"],
        "tasks": [{"content": "cheap watches @ shop.example call now +1 555 0104"}],
    }
    answer = api.post("/api/v1/scan/text", scan, format="json").json()["data"][0]
    assert (answer["results"][0]["suggestion"], answer["results"][0]["label"]) == (
        "block",
        "customized",
    )


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_decision_made_while_redis_is_down_propagates_once_it_is_back(
    own_redis, client, monkeypatch
):
    from audit import services
    from audit.models import Decision
    from audit.services import propagation
    from audit.tests.factories import ResultFactory, user_in

    own_redis.start()
    own_redis.stop()
    # Celery reads CELERY_BROKER_URL (set in CI) before its conf's broker_url.
    monkeypatch.setenv("CELERY_BROKER_URL", own_redis.url)
    conf = celery_app.conf
    saved = {k: conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")}
    conf.update(broker_url=own_redis.url, task_always_eager=False, task_default_queue="down")
    broker_reset()
    try:
        ResultFactory(task_id="a", text="Cheap watches at shop.example, call +1 555 0104")
        ResultFactory(task_id="b", text="CHEAP watches at shop.example!! call +1 555 0104")
        services.results_fingerprint_missing()
        client.force_login(user_in("Reviewer", username="rita"))
        response = client.post(
            "/audit/decide",
            {"taskIds": ["a"], "suggestion": "block", "label": "spam"},
            content_type="application/json",
        )
        assert response.status_code == 200  # the page answers; the decision is saved
        assert Decision.objects.get().propagation == "pending"
        own_redis.start()
        broker_reset()
        monkeypatch.setattr(propagation, "PROPAGATION_RESEND_AFTER", timedelta(0))
        with start_worker(
            celery_app, pool="solo", perform_ping_check=False, queues=["down"], shutdown_timeout=10
        ):
            tasks.decisions_propagate_pending()  # what beat runs every 30 seconds
            assert wait_for(lambda: Result.objects.get(task_id="b").verdict_source == "propagated")
        assert Decision.objects.get().propagation == "done"
    finally:
        conf.update(saved)
        broker_reset()
