"""A Celery worker whose propagation stops halfway, for test_worker_kill.py:

    STALL_MARKER=/tmp/x python -m audit.tests.stalling_worker --concurrency=1 -Q queue ...

In this worker only (its pool's children inherit it), samples.services.sample_learn is
wrapped: once it has taught the sample library (the targets are updated and their
DecisionTarget rows inserted before it), the propagation's transaction is still open. There
the wrapper writes what that transaction has written, as it sees it, to STALL_MARKER and
waits for the test's SIGKILL.
"""

import json
import os
import sys
import threading
from pathlib import Path

import django


def stall_after(learn):
    def stalled(*, result, decision):
        learn(result=result, decision=decision)
        from audit.models import DecisionTarget, Result, VerdictSource
        from samples.models import Sample

        written = {
            "targets": DecisionTarget.objects.filter(decision=decision).count(),
            "propagated": Result.objects.filter(
                decision=decision, verdict_source=VerdictSource.PROPAGATED
            ).count(),
            "samples": Sample.objects.count(),
        }
        marker = Path(os.environ["STALL_MARKER"])
        partial = marker.with_suffix(".partial")
        partial.write_text(json.dumps(written))
        partial.replace(marker)  # the test never reads half a file
        threading.Event().wait()  # the transaction stays open until the process dies

    return stalled


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
    django.setup()
    from samples import services

    services.sample_learn = stall_after(services.sample_learn)

    from moderation_console.celery import app

    app.worker_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    main()
