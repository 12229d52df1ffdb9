"""For tests that run real processes (Redis, Celery workers): waiting with a deadline, and
Celery's broker state in this process."""

import socket
import time

from moderation_console.celery import app as celery_app


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
