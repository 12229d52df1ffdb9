import os
import socket
from urllib.parse import urlparse

import pytest
from django.conf import settings as django_settings
from django.db import connection

from moderation_console.celery import app as celery_app


def pytest_sessionstart(session):
    # CI sets REQUIRE_SERVICES=1: a suite that quietly fell back to SQLite or skipped the
    # broker would hide exactly what CI is there to check.
    if os.environ.get("REQUIRE_SERVICES") != "1":
        return
    database_url = os.environ.get("DATABASE_URL", "")
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        pytest.exit("REQUIRE_SERVICES=1 but DATABASE_URL is not PostgreSQL", returncode=3)
    if not broker_url.startswith("redis://"):
        pytest.exit("REQUIRE_SERVICES=1 but CELERY_BROKER_URL is not Redis", returncode=3)
    for url in (database_url, broker_url):
        parsed = urlparse(url)
        try:
            socket.create_connection((parsed.hostname, parsed.port), timeout=3).close()
        except OSError as error:
            pytest.exit(f"{parsed.scheme} at {parsed.hostname}:{parsed.port}: {error}", 3)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    # SQLite's test database is in memory by default, out of reach of the worker processes
    # some tests start (audit/tests/test_worker_kill.py): a file of this run's own instead.
    database = django_settings.DATABASES["default"]
    # live_server threads would otherwise keep their connections open past the run, and the
    # test database could not be dropped at the end.
    database["CONN_MAX_AGE"] = 0
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = tmp_path_factory.mktemp("database") / "test.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(name)


@pytest.fixture(autouse=True, scope="session")
def no_index_warm_up():
    """Tests start workers in-process (worker_process_init): a warm-up thread would race the
    per-test clearing of the indexes (fresh_hash_indexes). Its tests call it directly."""
    django_settings.INDEX_WARMUP = False


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks run in-process unless a test starts a real worker (see celery_worker)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def fresh_hash_indexes():
    """The in-memory PDQ indexes outlive a test's rolled-back rows: start each test empty."""
    from samples import index

    index.clear_indexes()
    yield
    index.clear_indexes()


@pytest.fixture
def db_vendor() -> str:
    return connection.vendor
