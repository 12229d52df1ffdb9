"""For tests that run real processes (Redis, Celery workers): waiting with a deadline, and
Celery's broker state in this process."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.db import connection

from moderation_console.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "processes"  # the queue the worker (and beat) subprocesses of a test use


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def broker_reset() -> None:
    """Celery keeps its broker connections and its queue routing; drop both so the next
    send follows the current broker_url and task_default_queue."""
    celery_app._after_fork()
    celery_app.__dict__.pop("amqp", None)


def port_accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def database_url() -> str:
    """The test database, as a DATABASE_URL for another process."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    return urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()


class Workers:
    """`celery worker` subprocesses, each in a process group of its own to kill whole.

    The prefork pool, as in production: its parent acknowledges a message as soon as the
    child starts it unless the task acks late (the solo pool defers that acknowledgement
    until the task ends, so it could not tell).
    """

    def __init__(self, tmp_path: Path, broker_url: str):
        self.logs = tmp_path
        self.env = dict(
            os.environ,
            DATABASE_URL=database_url(),
            CELERY_BROKER_URL=broker_url,
            CELERY_TASK_DEFAULT_QUEUE=QUEUE,
            MEDIA_ROOT=str(tmp_path / "media"),
            STALL_MARKER=str(tmp_path / "stalled.json"),
        )
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, *entry: str) -> subprocess.Popen:
        command = [sys.executable, "-m", *entry, "--concurrency=1", "-Q", QUEUE, "-n", f"{name}@%h"]
        command += ["--loglevel=INFO", "--without-gossip", "--without-mingle"]
        return self._spawn(name, command)

    def kill(self, process: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def start_beat(self, name: str = "beat") -> subprocess.Popen:
        """`celery beat`, reading its jobs from the test database (django-celery-beat)."""
        command = [sys.executable, "-m", "celery", "-A", "moderation_console", "beat"]
        command += ["--loglevel=INFO", f"--pidfile={self.logs / (name + '.pid')}"]
        return self._spawn(name, command)

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        # A process group of its own, so kill() takes its children (the prefork pool) too.
        with open(self.logs / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)
        return process
