"""The purge against real concurrency on PostgreSQL: DETACH ... CONCURRENTLY from a session
outside any transaction (transactional tests), with other sessions reading and storing
results meanwhile; a detach left pending by an interrupted run; ingest meeting a day that has
no partition yet."""

import threading
from datetime import timedelta

import psycopg
import pytest
from django.db import OperationalError, connection, connections
from django.utils import timezone

from audit import partitions, services
from audit.models import DecisionItem, PurgeStatus, Result, ResultScene, ResultStub
from audit.tests.processes import wait_for
from audit.tests.test_purge import NOW, blocked, partition_exists, stored_on

# What the purge detaches with a result day (stubs stay for their own retention).
RESULT_ROWS = [s for s in partitions.partitioned_tables() if s.table != "audit_resultstub"]
TEXT_ITEM = {
    "text": "hello",
    "results": [{"scene": "antispam", "label": "normal", "suggestion": "pass", "rate": 1}],
}


@pytest.fixture
def postgresql(db_vendor):
    if db_vendor != "postgresql":
        pytest.skip("partitions are PostgreSQL's")


@pytest.fixture
def other_session(postgresql):
    """A session of its own on the test database, as another request or report would be."""
    params = connection.get_connection_params()
    session = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    yield session
    session.close()


def hold_snapshot(session) -> None:
    """An open transaction that has read the result store: a long report, say. A DETACH ...
    CONCURRENTLY waits for it to finish (and only it waits)."""
    session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    session.execute("SELECT count(*) FROM audit_result").fetchone()


def detach_waiting() -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE "
            "'%%DETACH PARTITION%%CONCURRENTLY%%' AND pid <> pg_backend_pid())"
        )
        return cursor.fetchone()[0]


def pending_detaches() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhdetachpending ORDER BY 1"
        )
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
def test_results_stored_and_read_while_a_day_is_detached_concurrently(other_session):
    old = stored_on(9)
    day = old.created_at.date()
    hold_snapshot(other_session)  # keeps the detach waiting until we let it go
    purged = {}

    def purge():
        try:
            purged["run"] = services.results_purge(now=NOW)
        finally:
            connections["default"].close()

    thread = threading.Thread(target=purge)
    thread.start()
    try:
        assert wait_for(detach_waiting), "the purge never reached its detach"
        # Meanwhile requests go on: with a plain DETACH (an ACCESS EXCLUSIVE lock waiting for
        # the open transaction) these would queue behind it until lock_timeout says so.
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '10s'")
        try:
            stored = services.results_ingest(
                media_type="text", biz_type="default", items=[TEXT_ITEM]
            )
            assert Result.objects.filter(id=stored[0].result.id).exists()
            assert Result.objects.count() >= 1
        except OperationalError as error:  # a lock wait: the failure this test is about
            pytest.fail(f"a request waited for the purge: {error}")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        other_session.rollback()
        thread.join(60)
    assert not thread.is_alive()
    run = purged["run"]
    assert run.status == PurgeStatus.DONE and run.partitions_dropped == [day.isoformat()]
    assert run.results_removed == 1
    assert not partition_exists(partitions.partition_name("audit_result", day))
    assert list(Result.objects.values_list("id", flat=True)) == [stored[0].result.id]
    assert pending_detaches() == []


@pytest.mark.django_db(transaction=True)
def test_a_detach_left_pending_by_an_interrupted_run_is_finalized_by_the_next(other_session):
    interrupted, untouched = stored_on(9), stored_on(10)
    decision = blocked(interrupted)
    day = interrupted.created_at.date()
    hold_snapshot(other_session)
    with connection.cursor() as cursor:
        # The run is stopped while its detach waits (a deploy, a killed worker).
        cursor.execute("SET statement_timeout = '300ms'")
        with pytest.raises(OperationalError):
            partitions.detach_day(cursor, day, RESULT_ROWS)
        cursor.execute("RESET statement_timeout")
    other_session.rollback()
    # The open transaction had read the results only: the scenes' and fingerprints' days were
    # detached, the results' day is left pending.
    assert pending_detaches() == [partitions.partition_name("audit_result", day)]

    # While one is pending, PostgreSQL refuses to detach another concurrently: the next run
    # only gets through by finalizing it first.
    run = services.results_purge(now=NOW)

    assert run.status == PurgeStatus.DONE
    assert untouched.created_at.date().isoformat() in run.partitions_dropped
    assert pending_detaches() == []
    for table in ("audit_result", "audit_resultscene", "audit_resultfingerprint"):
        assert not partition_exists(partitions.partition_name(table, day))
    assert not Result.objects.exists() and not ResultScene.objects.exists()
    assert DecisionItem.objects.get(decision=decision).result_id is None
    assert ResultStub.objects.count() == 2  # 410 for both


@pytest.mark.django_db
@pytest.mark.parametrize(
    "missing", [("audit_result", "audit_resultscene", "audit_resultstub"), ("audit_resultstub",)]
)
def test_a_result_whose_day_has_no_partition_yet_is_ingested(postgresql, missing):
    # Beat stopped for longer than the days made ahead: today has no partition (of every
    # table, or of one only).
    with connection.cursor() as cursor:
        cursor.execute("SELECT (statement_timestamp() AT TIME ZONE 'UTC')::date")
        today = cursor.fetchone()[0]
        for table in missing:
            for day in (today, today + timedelta(days=1)):
                cursor.execute(f"DROP TABLE IF EXISTS {partitions.partition_name(table, day)}")

    stored = services.results_ingest(media_type="text", biz_type="default", items=[TEXT_ITEM])

    result = Result.objects.get(id=stored[0].result.id)
    assert partitions.day_of_id(result.id) == today
    assert ResultScene.objects.filter(result=result).count() == 1
    assert ResultStub.objects.filter(result_id=result.id).exists()
    for table in missing:
        assert partition_exists(partitions.partition_name(table, today))


@pytest.mark.django_db
def test_ingest_retries_only_for_a_missing_partition(postgresql):
    from django.db import IntegrityError

    # A scene row without a label: NOT NULL, not a missing partition.
    item = dict(TEXT_ITEM, results=[dict(TEXT_ITEM["results"][0], label=None)])
    with pytest.raises(IntegrityError):
        services.results_ingest(media_type="text", biz_type="default", items=[item])
    assert not Result.objects.filter(created_at__gte=timezone.now() - timedelta(minutes=1)).exists()
