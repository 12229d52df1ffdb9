"""A worker killed (SIGKILL) in the middle of a propagation leaves nothing half-applied, and the
re-sent task completes it exactly once.

Real processes throughout: a redis-server of the test's own, `celery worker` subprocesses on
it, and the test database (a file on SQLite, see the root conftest; test_<name> on
PostgreSQL) reached by the workers through DATABASE_URL.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from kombu import Connection

from audit import services, tasks
from audit.models import Decision, DecisionTarget, PropagationState, Result
from audit.services import propagation
from audit.tests.factories import ResultFactory, user_in
from audit.tests.processes import QUEUE, broker_reset, wait_for
from moderation_console.celery import app as celery_app
from samples.models import Sample, SampleOrigin

ROOT = Path(__file__).resolve().parents[2]
SPAM = "Cheap watches at shop.example, call +1 555 0104"
COPIES = {
    "b": "CHEAP watches at shop.example!! call +1 555 0104",
    "c": "CHEAP wаtches at shop.example!! call +1 555 0199",  # Cyrillic а, other digits
}
OTHER = "See you at the match on Saturday, bring the blue scarf"


@pytest.fixture
def broker(own_redis, monkeypatch):
    """This process sends its tasks to the test's own Redis, as the console would."""
    # Celery reads CELERY_BROKER_URL (set in CI) before its conf's broker_url.
    monkeypatch.setenv("CELERY_BROKER_URL", own_redis.url)
    conf = celery_app.conf
    saved = {k: conf[k] for k in ("task_always_eager", "task_default_queue")}
    conf.update(task_always_eager=False, task_default_queue=QUEUE)
    broker_reset()
    yield redis.Redis.from_url(own_redis.url)
    conf.update(saved)
    broker_reset()


def results_state() -> dict:
    return {
        r.task_id: (r.suggestion, r.label, r.verdict_source, r.reviewed, r.decision_id, r.version)
        for r in Result.objects.order_by("task_id")
    }


def decision_state(decision_id: int) -> dict:
    return Decision.objects.filter(id=decision_id).values().get()


def processed(name: str, count: int) -> bool:
    """The worker has taken `count` propagations and runs none now."""
    inspect = celery_app.control.inspect(timeout=1)
    stats, active = inspect.stats() or {}, inspect.active() or {}
    node = next((node for node in stats if node.startswith(f"{name}@")), None)
    if node is None or node not in active:
        return False
    done = stats[node]["total"].get("audit.tasks.decision_propagate", 0)
    return done == count and not active[node]


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_propagation_leaves_nothing_and_the_resend_completes_it(
    workers, broker, monkeypatch
):
    stalling = workers.start("stalling", "audit.tests.stalling_worker")
    ResultFactory(task_id="a", text=SPAM)
    for task_id, text in COPIES.items():
        ResultFactory(task_id=task_id, text=text)
    ResultFactory(task_id="d", text=OTHER)
    services.results_fingerprint_missing()
    before = results_state()

    decision_id = services.decision_record(
        reviewer=user_in("Reviewer", username="rita"),
        task_ids=["a"],
        suggestion="block",
        label="spam",
        channel="console",
    ).decision.id  # the task is sent at commit, to the stalling worker

    marker = Path(workers.env["STALL_MARKER"])
    wait_for(lambda: marker.exists() or stalling.poll() is not None, timeout=45)
    assert marker.exists(), workers.log("stalling")
    # Inside its open transaction the worker had updated both copies, recorded them as
    # targets and added the sample ...
    assert json.loads(marker.read_text()) == {"targets": 2, "propagated": 2, "samples": 1}
    workers.kill(stalling)

    # ... and none of it is left.
    decision = Decision.objects.get(id=decision_id)
    assert decision.propagation == PropagationState.PENDING
    assert (decision.propagation_attempts, decision.changed_count) == (0, 0)
    assert decision.changed_task_ids == [] and decision.samples_added == []
    after_kill = results_state()
    assert {k: after_kill[k] for k in ("b", "c", "d")} == {k: before[k] for k in ("b", "c", "d")}
    assert not DecisionTarget.objects.exists()
    assert not Sample.objects.exists() and not SampleOrigin.objects.exists()
    assert broker.hlen("unacked") == 1  # acks_late: the dead worker never acknowledged it

    workers.start("second", "celery", "-A", "moderation_console", "worker")
    monkeypatch.setattr(propagation, "PROPAGATION_RESEND_AFTER", timedelta(0))
    tasks.decisions_propagate_pending()  # what beat runs every 30 seconds
    assert wait_for(
        lambda: Decision.objects.get(id=decision_id).propagation == PropagationState.DONE,
        timeout=45,
    ), workers.log("second")

    decision = Decision.objects.get(id=decision_id)
    assert (decision.propagation_attempts, decision.changed_count) == (1, 2)
    assert sorted(decision.changed_task_ids) == ["b", "c"]
    sample = Sample.objects.get()
    assert decision.samples_added == [{"sample": sample.id, "action": "added", "task_id": "a"}]
    done = results_state()
    for task_id in COPIES:
        version = before[task_id][-1] + 1  # updated once
        assert done[task_id] == ("block", "spam", "propagated", True, decision_id, version)
    assert done["d"] == before["d"]
    assert sorted(DecisionTarget.objects.values_list("task_id", flat=True)) == ["b", "c"]
    assert SampleOrigin.objects.get().task_id == "a"
    assert services.decisions_propagate_pending() == []

    # Redis hands the dead worker's message out again once its visibility timeout (an hour by
    # default) has passed: restore it now (only it: the second worker has acknowledged the
    # re-sent one); the worker runs it and changes nothing.
    assert wait_for(lambda: broker.hlen("unacked") == 1, timeout=10)
    completed = decision_state(decision_id)
    url = celery_app.conf.broker_url
    with Connection(url, transport_options={"visibility_timeout": 0}) as conn:
        conn.default_channel.qos.restore_visible(num=10, interval=1)
    assert wait_for(lambda: processed("second", 2), timeout=30), workers.log("second")
    assert wait_for(lambda: broker.hlen("unacked") == 0 and broker.llen(QUEUE) == 0, timeout=10)
    assert results_state() == done
    assert decision_state(decision_id) == completed
    assert DecisionTarget.objects.count() == 2 and Sample.objects.count() == 1
