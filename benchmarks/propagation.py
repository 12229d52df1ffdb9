"""From a decision to every similar result updated, end to end through a real Celery worker.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \
        .venv/bin/python benchmarks/propagation.py --decisions 20 --targets 100

Setup: every image result gets a `pdq` fingerprint row (random 32-byte codes, COPY on
PostgreSQL; no real PDQ is computed). Then for each decision a fresh unreviewed image result
is the base and N other unreviewed image results of the same biz type get the base's code
with 1-20 random bits flipped (within the 31 bits that match; random codes are ~128 bits
apart, so nothing else is that close). The base and its targets keep that one fingerprint row
only, so exact-pixel rows of the shared demo files cannot widen a decision, and each base gets
a generated picture file of its own, which propagation decodes for its crophash query (issue 8).

Timed: decision_record() in a transaction; the clock starts at its commit and stops when the
poll (every 5 ms) sees the decision `done` and all N targets `propagated`:
- worker: the task goes through Redis to `celery worker --pool=solo` in a subprocess;
- in-process (the baseline): the same propagation called directly, no broker and no worker.
The difference is the cost of the queue hop. The first decision of each variant is untimed:
it loads the process's index of result codes (its time is printed apart).

The decided rows are left as they are (base human, targets propagated): later runs pick
other unreviewed rows, about (2K + 2) x (N + 1) of them per run.
"""

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench-propagation"
BROKER = "redis://127.0.0.1:6379/13"

if __name__ == "__main__":
    # The worker and this process must agree on broker and queue before settings load.
    os.environ.setdefault("CELERY_BROKER_URL", BROKER)
    os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", QUEUE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.files.storage import default_storage  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Exists, OuterRef  # noqa: E402

from audit import services, tasks  # noqa: E402
from audit.models import (  # noqa: E402
    Decision,
    MediaType,
    PropagationState,
    Result,
    ResultFingerprint,
    VerdictSource,
)
from benchmarks.common import ensure_rows, percentile  # noqa: E402
from moderation_console.celery import app as celery_app  # noqa: E402
from samples.fingerprint_base import FingerprintKind as Kind  # noqa: E402
from samples.matching import key_of  # noqa: E402
from samples.quality import dataset  # noqa: E402

BIZ_TYPE = "default"
MAX_FLIPS = 20
POLL_SECONDS = 0.005
COPY_CHUNK = 100_000


# --- Setup -----------------------------------------------------------------------------------


def random_code(rng: random.Random) -> bytes:
    return rng.randbytes(32)


def near_code(code: bytes, rng: random.Random) -> bytes:
    """`code` with 1 to MAX_FLIPS distinct bits flipped."""
    value = int.from_bytes(code, "big")
    for bit in rng.sample(range(256), rng.randint(1, MAX_FLIPS)):
        value ^= 1 << bit
    return value.to_bytes(32, "big")


def pdq_row(result_id: int, code: bytes) -> tuple:
    return (result_id, Kind.PDQ.value, key_of(code), code, 100, "")


FP_FIELDS = ("result_id", "kind", "key", "code", "quality", "form")


def fingerprints_insert(rows: list[tuple]) -> None:
    """(result_id, kind, key, code, quality, form) rows: COPY on PostgreSQL, else the ORM."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        ResultFingerprint.objects.bulk_create(
            [ResultFingerprint(**dict(zip(FP_FIELDS, row, strict=True))) for row in rows],
            batch_size=2000,
        )
        return
    table = connection.ops.quote_name(ResultFingerprint._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(ResultFingerprint._meta.get_field(f).column) for f in FP_FIELDS
    )
    sql = f"COPY {table} ({columns}) FROM STDIN"
    with connection.cursor() as django_cursor, django_cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def pdq_backfill(rng: random.Random) -> int:
    """Give every image result lacking a `pdq` row one with a random code. Returns how many."""
    missing = (
        Result.objects.filter(media_type=MediaType.IMAGE)
        # NOT EXISTS, an anti-join: NOT IN over 600k ids falls back to a per-row subplan.
        .exclude(Exists(ResultFingerprint.objects.filter(result_id=OuterRef("id"), kind=Kind.PDQ)))
        .order_by("id")
        .values_list("id", flat=True)
    )
    done = 0
    last = 0
    while True:
        ids = list(missing.filter(id__gt=last)[:COPY_CHUNK])
        if not ids:
            break
        with transaction.atomic():
            fingerprints_insert([pdq_row(i, random_code(rng)) for i in ids])
        done += len(ids)
        last = ids[-1]
        if done >= COPY_CHUNK:
            print(f"  {done:,} pdq rows added", flush=True)
    if done and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {ResultFingerprint._meta.db_table}")
    return done


def plant(groups: int, targets: int, rng: random.Random) -> list[tuple[str, list[int]]]:
    """`groups` clusters of unreviewed image results of one biz type: (base task id, target
    ids), the targets within MAX_FLIPS bits of their base and of nothing else."""
    size = targets + 1
    picked = list(
        Result.objects.filter(
            media_type=MediaType.IMAGE,
            reviewed=False,
            biz_type=BIZ_TYPE,
            verdict_source=VerdictSource.MACHINE,
        )
        .order_by("created_at", "id")
        .values_list("id", "task_id")[: groups * size]
    )
    if len(picked) < groups * size:
        raise SystemExit(
            f"need {groups * size} unreviewed {BIZ_TYPE} image results, found {len(picked)}"
        )
    clusters, rows = [], []
    for g in range(groups):
        members = picked[g * size : (g + 1) * size]
        base_code = random_code(rng)
        rows.append(pdq_row(members[0][0], base_code))
        rows += [pdq_row(rid, near_code(base_code, rng)) for rid, _ in members[1:]]
        clusters.append((members[0][1], [rid for rid, _ in members[1:]]))
    with transaction.atomic():
        # One row each: no exact-pixel rows of the shared demo files, no earlier codes.
        ResultFingerprint.objects.filter(result_id__in=[rid for rid, _ in picked]).delete()
        fingerprints_insert(rows)
        # A picture of its own for each base: propagation decodes it for its crophash query
        # (samples.matching.image_crop_query), which must not meet the shared demo files.
        for g in range(groups):
            base_id = picked[g * size][0]
            Result.objects.filter(id=base_id).update(file=base_picture(rng, base_id))
    return clusters


def base_picture(rng: random.Random, result_id: int) -> str:
    """A ~200 KB JPEG of its own (1024 x 768), saved for a base; its storage name."""
    picture = dataset.draw_photo(random.Random(rng.random()), 1024, 768)
    name = f"results/bench-propagation/{result_id}-{uuid.uuid4().hex[:8]}.jpg"
    return default_storage.save(name, ContentFile(dataset.encode(picture, "JPEG", 90)))


# --- The worker --------------------------------------------------------------------------------


@contextmanager
def celery_worker():
    """A real worker in a subprocess, on this process's broker and queue."""
    queue = celery_app.conf.task_default_queue
    name = f"bench-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    env = dict(os.environ, CELERY_TASK_DEFAULT_QUEUE=queue)
    command = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "moderation_console",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        queue,
        "-n",
        name,
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
    ]
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)
    process = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603 - our own command
    try:
        started = time.perf_counter()
        while not celery_app.control.ping(destination=[name], timeout=0.5):
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited with {process.returncode}")
            if time.perf_counter() - started > 60:
                raise RuntimeError("the worker did not answer a ping within 60 s")
        print(f"worker up in {time.perf_counter() - started:.1f} s", flush=True)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- Timing ----------------------------------------------------------------------------------


def decide(reviewer, base: str, target_ids: list[int], worker: bool) -> tuple[float, int]:
    """Seconds from the decision's commit to every target propagated, and targets changed."""
    committed: list[float] = []
    if worker:
        with transaction.atomic():
            transaction.on_commit(lambda: committed.append(time.perf_counter()))
            outcome = services.decision_record(
                reviewer=reviewer,
                task_ids=[base],
                suggestion="block",
                label="porn",
                channel="console",
            )
    else:
        # No broker: the task message is not sent; the propagation runs right here.
        with mock.patch.object(tasks.decision_propagate, "delay"), transaction.atomic():
            outcome = services.decision_record(
                reviewer=reviewer,
                task_ids=[base],
                suggestion="block",
                label="porn",
                channel="console",
            )
        committed.append(time.perf_counter())
        services.decision_propagate(decision_id=outcome.decision.id)
    start = committed[0] if committed else time.perf_counter()
    decision_id = outcome.decision.id
    deadline = start + 120
    while True:
        done = Decision.objects.filter(
            id=decision_id, propagation=PropagationState.DONE
        ).values_list("changed_count", flat=True)
        if done:
            propagated = Result.objects.filter(
                id__in=target_ids, verdict_source=VerdictSource.PROPAGATED, decision_id=decision_id
            ).count()
            if propagated == len(target_ids):
                return time.perf_counter() - start, done[0]
            raise AssertionError(f"decision {decision_id}: {propagated}/{len(target_ids)} reached")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"decision {decision_id} still pending after 120 s")
        time.sleep(POLL_SECONDS)


def series(reviewer, clusters, worker: bool) -> tuple[float, list[float], list[int]]:
    """(warm-up seconds, timed seconds, changed counts): the first cluster is the warm-up."""
    warmup, changed_warm = decide(reviewer, *clusters[0], worker=worker)
    seconds, changed = [], [changed_warm]
    for base, target_ids in clusters[1:]:
        s, n = decide(reviewer, base, target_ids, worker=worker)
        seconds.append(s)
        changed.append(n)
    return warmup, seconds, changed


def figures_of(seconds: list[float]) -> dict:
    return {
        "p50": statistics.median(seconds),
        "p95": percentile(seconds, 0.95),
        "max": max(seconds),
    }


def run(
    *, decisions: int = 20, targets: int = 100, ensure: int = 0, worker: bool = True, seed=None
) -> dict:
    rows = ensure_rows(ensure) if ensure else Result.objects.count()
    rng = random.Random(seed)
    started = time.perf_counter()
    added = pdq_backfill(rng)
    clusters = plant(2 * (decisions + 1), targets, rng)
    setup = time.perf_counter() - started
    print(
        f"{connection.vendor}, {rows:,} results; setup {setup:.1f} s ({added:,} pdq rows added, "
        f"{len(clusters)} clusters of 1 + {targets} planted)",
        flush=True,
    )
    reviewer, _ = get_user_model().objects.get_or_create(username="bench-propagation")
    mine, baseline_clusters = clusters[: decisions + 1], clusters[decisions + 1 :]

    figures: dict = {"setup_s": setup, "pdq_added": added, "results": rows}
    if worker:
        with celery_worker():
            warm, seconds, changed = series(reviewer, mine, worker=True)
        name = "worker"
    else:
        warm, seconds, changed = series(reviewer, mine, worker=False)
        name = "in-process"
    figures["variant"] = name
    figures["warmup_s"] = warm
    figures["changed"] = changed
    figures.update(figures_of(seconds))
    b_warm, b_seconds, b_changed = series(reviewer, baseline_clusters, worker=False)
    figures["baseline"] = {"warmup_s": b_warm, "changed": b_changed, **figures_of(b_seconds)}
    report(figures, decisions, targets)
    return figures


def report(figures: dict, decisions: int, targets: int) -> None:
    base = figures["baseline"]
    print(f"{decisions} decisions, each reaching {targets} similar results")
    for name, f in ((figures["variant"], figures), ("in-process (baseline)", base)):
        print(
            f"  {name:>22}: p50 {f['p50'] * 1000:7.1f} ms  p95 {f['p95'] * 1000:7.1f} ms  "
            f"max {f['max'] * 1000:7.1f} ms   warm-up (index load) {f['warmup_s']:.2f} s   "
            f"changed {min(f['changed'])}-{max(f['changed'])}"
        )
    print(
        f"  queue hop: +{(figures['p50'] - base['p50']) * 1000:.1f} ms at p50, "
        f"{figures['p95'] / base['p95']:.1f}x the baseline at p95 "
        f"(target: <= 1 s p95 through the worker)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=20, help="timed decisions")
    parser.add_argument("--targets", type=int, default=100, help="similar results per decision")
    parser.add_argument(
        "--ensure-rows", type=int, default=0, help="seed demo results until the store holds this"
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if celery_app.conf.task_always_eager:
        sys.exit("Set CELERY_BROKER_URL (Redis) for the worker.")
    run(decisions=args.decisions, targets=args.targets, ensure=args.ensure_rows, seed=args.seed)


if __name__ == "__main__":
    main()
