"""The retention purge, on both databases: PostgreSQL drops day partitions, SQLite deletes in
batches; either way only expired results go, decisions and samples stay, media goes too."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from audit import partitions, services, thumbnails
from audit.locks import job_lock
from audit.models import (
    Decision,
    DecisionItem,
    DecisionTarget,
    PurgeRun,
    PurgeStatus,
    Result,
    ResultFingerprint,
    ResultScene,
    ResultStub,
)
from audit.services import purge
from audit.services.ingest import stub_of
from audit.tests.factories import ResultFactory, api_client_user, image_bytes
from green.models import TaskCallback

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
SERIAL = iter(range(1, 10**6))


def stored_on(days_ago: float, **fields) -> Result:
    """A result stored `days_ago` days before NOW, expiring 7 days after that. On
    PostgreSQL it gets an id of that day, so it sits in that day's partition."""
    created = NOW - timedelta(days=days_ago)
    fields.setdefault("expires_at", created + timedelta(days=7))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for spec in partitions.partitioned_tables():
                partitions.ensure_day(cursor, spec, created.date())
        low, _ = partitions.day_bounds(created.date())
        fields["id"] = low + next(SERIAL)
    result = ResultFactory(created_at=created, **fields)
    ResultScene.objects.create(
        result=result, scene="antispam", label="spam", suggestion="review", rate=90
    )
    ResultFingerprint.objects.create(result=result, kind="text_exact", key=next(SERIAL))
    stub_of(result).save(force_insert=True)
    return result


def with_file(result: Result) -> str:
    name = default_storage.save(
        f"results/2026/01/01/{result.task_id}.jpg", ContentFile(image_bytes())
    )
    Result.objects.filter(id=result.id).update(file=name, media_type="image")
    return name


def blocked(result: Result, note: str = "") -> Decision:
    """A reviewer's block decision on `result`, as decision_record leaves it."""
    decision = Decision.objects.create(
        channel="console", suggestion="block", label="spam", item_count=1, note=note
    )
    DecisionItem.objects.create(
        decision=decision,
        result=result,
        task_id=result.task_id,
        media_type=result.media_type,
        previous_suggestion="review",
        previous_source="machine",
    )
    return decision


def test_only_expired_results_go_with_their_rows_and_files():
    old = stored_on(8)
    old_file = with_file(old)
    thumb = thumbnails.thumbnail_name(Result.objects.get(id=old.id))
    young = stored_on(6.5)
    young_file = with_file(young)

    run = services.results_purge(now=NOW)

    assert run.status == PurgeStatus.DONE and run.results_removed == 1
    assert list(Result.objects.values_list("id", flat=True)) == [young.id]
    assert not ResultScene.objects.filter(result_id=old.id).exists()
    assert not ResultFingerprint.objects.filter(result_id=old.id).exists()
    assert ResultScene.objects.filter(result_id=young.id).exists()
    assert not default_storage.exists(old_file) and not default_storage.exists(thumb)
    assert default_storage.exists(young_file)
    assert run.files_removed == 1


def test_a_result_is_never_removed_before_it_expires():
    edge = stored_on(7, expires_at=NOW + timedelta(seconds=1))
    services.results_purge(now=NOW)
    assert Result.objects.filter(id=edge.id).exists()
    services.results_purge(now=NOW + timedelta(seconds=1))
    assert not Result.objects.filter(id=edge.id).exists()


def test_a_second_run_removes_nothing():
    stored_on(9)
    assert services.results_purge(now=NOW).results_removed == 1
    again = services.results_purge(now=NOW)
    assert again.results_removed == 0 and again.partitions_dropped == []
    assert again.status == PurgeStatus.DONE


def test_decisions_keep_their_record_and_lose_only_the_link():
    old = stored_on(9)
    decision = blocked(old)
    DecisionTarget.objects.create(
        decision=decision, result=old, task_id=old.task_id, previous_suggestion="review"
    )
    # Another app's row pointing at results (an async scan's callback, green).
    TaskCallback.objects.create(result=old, task_id=old.task_id, url="https://x.example/", seed="s")
    services.results_purge(now=NOW)
    item = DecisionItem.objects.get()
    assert item.result_id is None and item.task_id == old.task_id
    assert DecisionTarget.objects.get().result_id is None
    assert TaskCallback.objects.get().result_id is None
    assert Decision.objects.get().label == "spam"


def test_a_run_that_finds_another_one_going_is_skipped():
    old = stored_on(9)
    with job_lock("results-purge", ttl=timedelta(minutes=5)) as held:
        assert held
        run = services.results_purge(now=NOW)
    assert run.status == PurgeStatus.SKIPPED
    assert Result.objects.filter(id=old.id).exists()
    assert services.results_purge(now=NOW).results_removed == 1  # the lock was released


def test_a_lock_left_by_a_dead_run_expires():
    with job_lock("results-purge", ttl=timedelta(seconds=-1)) as held:
        assert held
        # Still "held" here, but its lease is over: a new run may take it.
        with job_lock("results-purge", ttl=timedelta(minutes=5)) as again:
            assert again


def test_results_arriving_during_a_purge_stay(monkeypatch):
    stored_on(9)
    arrived = []
    delete_files = purge._delete_files

    def meanwhile(names):
        # A request stores a result while the purge is at work.
        arrived.append(ResultFactory(created_at=timezone.now()))
        return delete_files(names)

    monkeypatch.setattr(purge, "_delete_files", meanwhile)
    run = services.results_purge(now=NOW)
    assert run.results_removed == 1
    assert arrived and Result.objects.filter(id__in=[r.id for r in arrived]).count() == len(arrived)


def test_each_run_is_recorded():
    stored_on(9)
    services.results_purge(now=NOW)
    run = PurgeRun.objects.get()
    assert run.finished_at and run.cutoff == NOW and run.results_removed == 1


def test_the_task_answers_with_what_it_removed(settings):
    ResultFactory(expires_at=timezone.now() - timedelta(minutes=1))
    from audit import tasks

    assert tasks.results_purge.delay().get() == 1


# Stubs: 410 Gone for a purged task id --------------------------------------------------------


@pytest.fixture
def api():
    _, token = api_client_user()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_purged_result_answers_410_with_its_expiry(api):
    old = stored_on(9)
    services.results_purge(now=NOW)
    response = api.get(f"/api/v1/results/{old.task_id}")
    assert response.status_code == 410
    body = response.json()
    assert body["code"] == 410 and body["expiredAt"].startswith(old.expires_at.date().isoformat())


def test_a_task_id_that_never_existed_stays_404(api):
    assert api.get("/api/v1/results/never-was").status_code == 404


def test_a_live_result_still_answers_200(api):
    young = stored_on(1)
    assert api.get(f"/api/v1/results/{young.task_id}").status_code == 200


def test_stubs_go_after_their_own_retention(settings):
    settings.RESULT_STUB_DAYS = 30
    old = stored_on(20)
    older = stored_on(45)
    run = services.results_purge(now=NOW)
    assert ResultStub.objects.filter(result_id=old.id).exists()
    assert not ResultStub.objects.filter(result_id=older.id).exists()
    assert run.stubs_removed == 1


# PostgreSQL: days as partitions --------------------------------------------------------------


@pytest.fixture
def postgresql(db_vendor):
    if db_vendor != "postgresql":
        pytest.skip("partitions are PostgreSQL's; SQLite purges by the batched DELETE above")


def partition_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


def test_an_expired_day_is_dropped_as_partitions(postgresql):
    old = stored_on(9)
    day = old.created_at.date()
    run = services.results_purge(now=NOW)
    assert run.partitions_dropped == [day.isoformat()] and run.rows_deleted == 0
    for table in ("audit_result", "audit_resultscene", "audit_resultfingerprint"):
        assert not partition_exists(partitions.partition_name(table, day))
    # The stubs of that day stay (RESULT_STUB_DAYS): 410, not 404.
    assert partition_exists(partitions.partition_name("audit_resultstub", day))


def test_a_day_holding_a_later_expiring_result_is_kept_and_deleted_row_by_row(postgresql):
    old = stored_on(9)
    kept = stored_on(9, expires_at=NOW + timedelta(days=1))
    run = services.results_purge(now=NOW)
    assert run.partitions_dropped == [] and run.rows_deleted == 1
    assert list(Result.objects.values_list("id", flat=True)) == [kept.id]
    assert partition_exists(partitions.partition_name("audit_result", old.created_at.date()))


def test_rows_with_explicit_old_ids_are_purged_from_the_legacy_partition(postgresql):
    stray = ResultFactory(id=42, expires_at=NOW - timedelta(days=1))
    stub_of(stray).save(force_insert=True)
    ResultStub.objects.filter(result_id=42).update(expires_at=NOW - timedelta(days=400))
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM audit_result WHERE id = 42")
        assert cursor.fetchone()[0] == "audit_result_legacy"
    run = services.results_purge(now=NOW)
    assert run.rows_deleted == 1 and not Result.objects.filter(id=stray.id).exists()
    assert run.stubs_removed == 1 and not ResultStub.objects.filter(result_id=42).exists()
    assert partition_exists("audit_result_legacy")  # emptied, never dropped


def test_new_results_get_an_id_of_their_day(postgresql):
    result = services.results_ingest(
        media_type="text",
        biz_type="default",
        items=[
            {
                "text": "hi",
                "results": [
                    {"scene": "antispam", "label": "normal", "suggestion": "pass", "rate": 1}
                ],
            }
        ],
    )[0].result
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_date")
        today = cursor.fetchone()[0]
    assert partitions.day_of_id(result.id) == today
    assert result.id < 2**53  # exact in JavaScript


def test_the_coming_days_get_their_partitions(postgresql):
    later = NOW.date() + timedelta(days=purge.PARTITIONS_AHEAD)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {partitions.partition_name('audit_result', later)}")
    run = services.results_purge(now=NOW)
    assert run.partitions_created >= 1
    assert partition_exists(partitions.partition_name("audit_result", later))


def test_making_days_creates_exactly_the_missing_partitions(postgresql):
    # ensure_days looks for all of them at once: one table's partition gone is made again,
    # nothing else is, and a second call makes nothing.
    first = NOW.date() + timedelta(days=50)
    last = first + timedelta(days=2)
    with connection.cursor() as cursor:
        assert partitions.ensure_days(cursor, first, last) == 3 * len(
            partitions.partitioned_tables()
        )
        middle = partitions.partition_name("audit_resultscene", first + timedelta(days=1))
        cursor.execute(f"DROP TABLE {partitions.quote(middle)}")
        assert partitions.ensure_days(cursor, first, last) == 1
        assert partitions.ensure_days(cursor, first, last) == 0
    assert partition_exists(middle)


def test_a_row_of_a_day_without_partitions_is_refused_until_its_day_is_made(postgresql):
    # Outside ingest nothing makes a day on the fly: the row is refused, not put aside.
    from django.db import IntegrityError, transaction

    day = NOW.date() + timedelta(days=40)
    low, _ = partitions.day_bounds(day)
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        ResultFactory(id=low + 5)
    assert partitions.is_missing_partition(refused.value)
    with connection.cursor() as cursor:
        partitions.ensure_days(cursor, day, day)
    assert ResultFactory(id=low + 5).id == low + 5


def test_no_default_partition_is_left(postgresql):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c "
            "ON c.oid = p.partdefid WHERE p.partdefid <> 0"
        )
        assert cursor.fetchall() == []
    for spec in partitions.partitioned_tables():
        assert partition_exists(partitions.legacy_name(spec.table))


def test_the_migration_moves_the_rows_of_default_partitions_to_their_places(postgresql):
    # A database migrated before 0009 has DEFAULT partitions, some rows in them.
    day = NOW.date() + timedelta(days=40)
    low, _ = partitions.day_bounds(day)
    with connection.cursor() as cursor:
        partitions.default_restore(cursor)
    old, future = ResultFactory(id=42), ResultFactory(id=low + 7)
    for result in (old, future):
        stub_of(result).save(force_insert=True)
        ResultScene.objects.create(
            result=result, scene="porn", label="normal", suggestion="pass", rate=1
        )
    with connection.cursor() as cursor:
        partitions.default_replace(cursor)  # 0009
        cursor.execute(
            "SELECT tableoid::regclass::text, count(*) FROM audit_resultscene GROUP BY 1 ORDER BY 1"
        )
        assert cursor.fetchall() == [
            ("audit_resultscene_legacy", 1),
            (partitions.partition_name("audit_resultscene", day), 1),
        ]
    assert set(Result.objects.values_list("id", flat=True)) == {42, low + 7}
    assert ResultStub.objects.count() == 2
    assert not partition_exists(partitions.default_name("audit_result"))


# The schedule and the admin ----------------------------------------------------------------


def test_the_purge_job_is_scheduled_in_the_database_and_an_admin_change_survives(settings):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from audit import schedules

    job = PeriodicTask.objects.get(name="results-purge")
    assert job.task == "audit.tasks.results_purge" and job.enabled
    assert job.interval.every == 3600 and job.interval.period == IntervalSchedule.SECONDS
    daily, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.DAYS)
    job.interval = daily
    job.save()
    assert schedules.schedules_ensure() == []
    assert PeriodicTask.objects.get(name="results-purge").interval == daily


def test_admins_see_the_runs_and_the_schedule(client):
    from audit.tests.factories import user_in

    stored_on(9)
    services.results_purge(now=NOW)
    admin_user = user_in("Admin", username="root-admin", is_staff=True)
    client.force_login(admin_user)
    page = client.get("/admin/audit/purgerun/")
    assert page.status_code == 200 and b"results removed" in page.content.lower()
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 200
    assert client.get("/admin/audit/purgerun/add/").status_code == 403


def test_reviewers_cannot_see_the_runs(client):
    from audit.tests.factories import user_in

    client.force_login(user_in("Reviewer", username="rev", is_staff=True))
    assert client.get("/admin/audit/purgerun/").status_code == 403


def test_the_command_runs_the_same_purge(capsys):
    from django.core.management import call_command

    ResultFactory(expires_at=timezone.now() - timedelta(minutes=1))
    call_command("purge_results")
    assert "done: 1 results removed" in capsys.readouterr().out


def test_the_detail_page_of_a_purged_result_says_it_expired_and_keeps_its_decisions(client):
    from audit.tests.factories import user_in

    old = stored_on(9)
    blocked(old, note="<b>x</b>")
    services.results_purge(now=NOW)
    client.force_login(user_in("Reviewer", username="rev-expired"))
    page = client.get(f"/audit/items/{old.task_id}/")
    assert page.status_code == 410
    body = page.content.decode()
    assert "expired on" in body and "spam" in body
    assert "<b>x</b>" not in body and "&lt;b&gt;x&lt;/b&gt;" in body  # escaped
    assert client.get("/audit/items/never-was/").status_code == 404


def test_a_day_detached_by_a_run_that_stopped_is_dropped_by_the_next(postgresql):
    old = stored_on(9)
    day = old.created_at.date()
    with connection.cursor() as cursor:
        partitions.detach_day(cursor, day, partitions.partitioned_tables()[:1])
    name = partitions.partition_name("audit_resultscene", day)
    assert partition_exists(name)  # a table of its own now, no longer a partition
    services.results_purge(now=NOW)
    assert not partition_exists(name)
    assert not partition_exists(partitions.partition_name("audit_result", day))


def test_a_detached_table_goes_index_by_index_and_a_stopped_drop_is_finished(postgresql):
    old = stored_on(9)
    day = old.created_at.date()
    spec = partitions.partitioned_tables()[1]  # fingerprints: three indexes and a primary key
    name = partitions.partition_name(spec.table, day)
    with connection.cursor() as cursor:
        partitions.detach_day(cursor, day, [spec])
        indexes = partitions._plain_indexes(cursor, name)
        assert len(indexes) >= 3
        pieces = []

        def stop(spec, day):
            raise RuntimeError("stopped before the table")

        with pytest.raises(RuntimeError):
            partitions.drop_detached(cursor, before_drop=stop, pace=pieces.append)
        # Each index went in its own transaction (and rested after); the table is left.
        assert partitions._plain_indexes(cursor, name) == []
        assert len(pieces) == len(indexes) and partition_exists(name)
    services.results_purge(now=NOW)
    assert not partition_exists(name)
