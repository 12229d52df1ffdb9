"""Loading a process's fingerprint indexes when it starts, in the background.

Without it the first search of each process pays the load, 10-16 s at 600k-4M codes: the
first propagation of a worker, the first scan request of a web process. A search that comes
during the warm-up waits for that same load (SyncedIndex.refresh holds its lock through a first
load) instead of starting another.

Started, when INDEX_WARMUP is on, by Celery's worker_process_init (moderation_console/celery.py)
and by the WSGI and ASGI modules: only servers import those, runserver in its child process
(the autoreloading parent never serves), management commands and tests never.
"""

import logging
import threading
import time

import faiss
from django.conf import settings
from django.db import connections

from samples import index, matching

logger = logging.getLogger(__name__)


def indexes_warm_up_in_background() -> threading.Thread | None:
    if not settings.INDEX_WARMUP:
        return None
    thread = threading.Thread(target=_warm_up, name="index-warm-up", daemon=True)
    thread.start()
    return thread


def _warm_up() -> None:
    # One probe needs no team of OpenMP threads, and a process that forks once warm (gunicorn
    # --preload) must not have started them: GNU OpenMP hangs in a child forked after use.
    # The count is this thread's own.
    faiss.omp_set_num_threads(1)
    started = time.monotonic()
    try:
        matching.indexes_warm_up()
    except Exception:
        # Not fatal: the first search loads whatever is missing, as it would without this.
        logger.exception("Fingerprint index warm-up failed")
        return
    finally:
        connections.close_all()  # this thread's own connections: nothing else closes them
    sizes = ", ".join(f"{name} {s['size']:,}" for name, s in index.indexes_stats().items())
    logger.info("Fingerprint indexes loaded in %.1f s: %s", time.monotonic() - started, sizes)
