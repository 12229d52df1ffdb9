"""Removing a day of results: dropping its partitions, against a batched DELETE of the same
kind of rows followed by the VACUUM it needs. PostgreSQL only; it destroys what it measures.

    createdb -h 127.0.0.1 -U postgres bench_purge
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_purge .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_purge \\
        .venv/bin/python benchmarks/purge.py --rows 1000000

Setup, every run: the result store is emptied (TRUNCATE), then `seed_demo` stores --rows
results spread evenly over the last 7 days (~143,000 a day at 1M) with their scene rows and
stubs, and fingerprint rows like the real ones are added by COPY (images: exact + PDQ + 7
flipped/rotated forms; texts: exact + 32 LSH bands + MinHash; videos: file + 10 frames).

Timed, with the clock moved forward so that one calendar day at a time has expired:
- baseline: the oldest full day removed as a plain table must: the purge's own batched DELETE
  (5,000 results a transaction; the ORM clears scenes, fingerprints and decision links), then
  VACUUM of the tables it deleted from;
- ours: each following full day removed by `results_purge()`, which drops its partitions.
Each prints seconds, WAL written (pg_current_wal_insert_lsn, after a CHECKPOINT) and rows.
Meanwhile another process requests the Audit page (image tab) without pause; its p95 before
the purges and during each is printed.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from audit import partitions  # noqa: E402
from audit.models import MediaType, PurgeRun, Result, ResultFingerprint  # noqa: E402
from audit.services import purge  # noqa: E402
from benchmarks.common import percentile  # noqa: E402
from samples.fingerprint_base import FingerprintKind as Kind  # noqa: E402

DAY = timedelta(days=1)
FP_FIELDS = ("result_id", "kind", "key", "code", "quality", "form")
FORMS = ("flip-h", "flip-v", "rot90", "rot180", "rot270", "transpose", "transverse")
TARGETS = {"seconds": 1.0, "speedup": 10.0, "wal_ratio": 100.0, "page_p95_growth": 0.20}


# Setup ---------------------------------------------------------------------------------------


def reset_and_seed(rows: int) -> None:
    tables = [spec.table for spec in partitions.partitioned_tables()]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(partitions.quote(t) for t in tables))
    call_command("seed_demo", count=rows, no_accounts=True)
    fingerprints_copy()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(partitions.quote(t) for t in tables))


def fingerprint_rows(rng: np.random.Generator, result_id: int, media_type: str):
    keys = rng.integers(-(2**63), 2**63 - 1, 34)
    if media_type == MediaType.IMAGE:
        codes = rng.bytes(32 * 8)
        yield (result_id, Kind.IMAGE_EXACT.value, int(keys[0]), None, None, "")
        yield (result_id, Kind.PDQ.value, int(keys[1]), codes[:32], 90, "")
        for i, form in enumerate(FORMS, start=1):
            yield (result_id, Kind.PDQ_VARIANT.value, None, codes[32 * i : 32 * i + 32], 90, form)
    elif media_type == MediaType.TEXT:
        yield (result_id, Kind.TEXT_EXACT.value, int(keys[0]), None, None, "")
        for key in keys[1:33]:
            yield (result_id, Kind.TEXT_BAND.value, int(key), None, None, "")
        yield (result_id, "text_minhash", None, rng.bytes(512), None, "")
    else:
        yield (result_id, Kind.VIDEO_FILE.value, int(keys[0]), None, None, "")
        for _ in range(10):
            yield (result_id, Kind.VIDEO_FRAME.value, None, rng.bytes(32), 80, "")


def fingerprints_copy() -> None:
    rng = np.random.default_rng(1)
    columns = ", ".join(ResultFingerprint._meta.get_field(f).column for f in FP_FIELDS)
    table = partitions.quote(ResultFingerprint._meta.db_table)
    started, count = time.perf_counter(), 0
    # seed_demo fingerprints small stores itself; read first: COPY holds the connection.
    missing = list(Result.objects.filter(fingerprints__isnull=True).values_list("id", "media_type"))
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for result_id, media_type in missing:
                for row in fingerprint_rows(rng, result_id, media_type):
                    copy.write_row(row)
                    count += 1
    print(f"fingerprint rows: {count:,} in {time.perf_counter() - started:.0f} s", flush=True)


# Measuring ----------------------------------------------------------------------------------


def wal_position() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint")
        return cursor.fetchone()[0]


def checkpoint() -> None:
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def measured(step) -> dict:
    checkpoint()
    wal, started = wal_position(), time.perf_counter()
    removed = step()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "wal": wal_position() - wal, "rows": removed, "start": started}


def day_rows(day) -> int:
    low, high = partitions.day_bounds(day)
    return Result.objects.filter(id__gte=low, id__lt=high).count()


def baseline_delete(day) -> int:
    """The batched DELETE a plain table needs (the purge's own), then VACUUM."""
    now = datetime.combine(day + DAY, datetime.min.time(), UTC) + retention()
    run = PurgeRun(started_at=now, cutoff=now, status="running")
    purge._purge_rows(run, now)
    tables = [s.table for s in partitions.partitioned_tables() if s.table != "audit_resultstub"]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM {partitions.quote(partitions.partition_name(table, day))}")
    return run.rows_deleted


def drop_day(day) -> int:
    now = datetime.combine(day + DAY, datetime.min.time(), UTC) + retention()
    run = purge.results_purge(now=now)
    assert run.partitions_dropped == [day.isoformat()], run.partitions_dropped
    return run.results_removed


def retention() -> timedelta:
    return timedelta(days=settings.RESULT_RETENTION_DAYS)


def pager(out: str, stop: str) -> None:
    """Runs in its own process: request the Audit page until `stop` exists; write
    'start_perf_counter duration' lines (perf_counter is system-wide on Linux)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from audit.tests.factories import user_in

    user = get_user_model().objects.filter(username="bench-purge").first() or user_in(
        "Reviewer", username="bench-purge"
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    with open(out, "w") as f:
        while not os.path.exists(stop):
            started = time.perf_counter()
            response = client.get("/audit/?type=image")
            assert response.status_code == 200
            f.write(f"{started} {time.perf_counter() - started}\n")
            f.flush()


def page_times(path: str, windows: list[tuple[float, float]]) -> list[list[float]]:
    samples = [tuple(map(float, line.split())) for line in Path(path).read_text().splitlines()]
    return [[d for s, d in samples if s < end and s + d > begin] for begin, end in windows]


def run(*, rows: int, days: int, page_load: bool = True) -> dict:
    assert connection.vendor == "postgresql", "the partition purge is PostgreSQL's"
    started = time.perf_counter()
    reset_and_seed(rows)
    print(f"seeded {rows:,} results in {time.perf_counter() - started:.0f} s", flush=True)
    with connection.cursor() as cursor:
        stored = [d for d in partitions.partition_days(cursor, "audit_result") if day_rows(d)]
    first, full = stored[0], stored[1:-1]  # the oldest and newest days are partial
    full = full[: days + 1]
    assert len(full) >= 2, "need at least two full days: seed more rows"
    # Untimed: the partial oldest day goes, and the partitions ahead of the last "now" exist.
    purge.results_purge(now=datetime.combine(first + DAY, datetime.min.time(), UTC) + retention())
    with connection.cursor() as cursor:
        last = full[-1] + retention() + timedelta(days=purge.PARTITIONS_AHEAD + 2)
        partitions.ensure_days(cursor, full[0], last)

    scratch = tempfile.mkdtemp()
    out, stop = f"{scratch}/pages.txt", f"{scratch}/stop"
    process = None
    if page_load:
        process = subprocess.Popen(
            [sys.executable, __file__, "--pager", out, "--stop", stop], env=os.environ.copy()
        )
        time.sleep(8)  # warm up, then a quiet window
    quiet_begin = time.perf_counter()
    time.sleep(5 if page_load else 0)
    quiet = (quiet_begin, time.perf_counter())

    figures = {"days": []}
    size = day_rows(full[0])
    base = measured(lambda: baseline_delete(full[0]))
    base["size"] = size
    with connection.cursor() as cursor:
        partitions.drop_day(cursor, full[0])  # the emptied partitions, untimed
    ours = []
    for day in full[1:]:
        size = day_rows(day)
        figure = measured(lambda d=day: drop_day(d))
        figure["size"] = size
        ours.append(figure)
        time.sleep(1)
    if process:
        Path(stop).touch()
        process.wait(30)

    print(f"\none day of results at {rows:,} stored (~{size:,} results a day, real schema):")
    print(f"{'':34} {'results':>9} {'seconds':>9} {'WAL MB':>9}")
    print(
        f"{'baseline: batched DELETE + VACUUM':34} {base['rows']:>9,} "
        f"{base['seconds']:>9.3f} {base['wal'] / 1e6:>9.2f}"
    )
    for day, figure in zip(full[1:], ours, strict=True):
        print(
            f"{'ours: drop partitions ' + day.isoformat():34} {figure['rows']:>9,} "
            f"{figure['seconds']:>9.3f} {figure['wal'] / 1e6:>9.3f}"
        )
    worst = max(ours, key=lambda f: f["seconds"])
    most_wal = max(ours, key=lambda f: f["wal"])
    speedup = base["seconds"] / worst["seconds"]
    wal_ratio = base["wal"] / max(most_wal["wal"], 1)
    print(
        f"\nslowest drop {worst['seconds']:.3f} s (target <= {TARGETS['seconds']} s); "
        f"{speedup:.0f}x faster than the DELETE (target >= {TARGETS['speedup']:.0f}x); "
        f"{wal_ratio:.0f}x less WAL (target >= {TARGETS['wal_ratio']:.0f}x)"
    )
    figures.update(baseline=base, ours=ours, speedup=speedup, wal_ratio=wal_ratio)
    if page_load:
        windows = [quiet, (base["start"], base["start"] + base["seconds"])]
        windows += [(f["start"], f["start"] + f["seconds"]) for f in ours]
        during_drops = page_times(out, windows[2:])
        quiet_ms, delete_ms = ([d * 1000 for d in ds] for ds in page_times(out, windows[:2]))
        drops_ms = [d * 1000 for ds in during_drops for d in ds]
        before = percentile(quiet_ms, 0.95)
        print(
            f"Audit page p95: {before:.1f} ms quiet ({len(quiet_ms)} requests), "
            f"{percentile(drops_ms, 0.95) if drops_ms else float('nan'):.1f} ms during the "
            f"drops ({len(drops_ms)} requests), "
            f"{percentile(delete_ms, 0.95) if delete_ms else float('nan'):.1f} ms during the "
            f"DELETE ({len(delete_ms)} requests); target: within 20% of quiet"
        )
        figures.update(page_quiet=before, page_drops=drops_ms, page_delete=delete_ms)
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=5, help="full days to drop, at most")
    parser.add_argument("--pager", help=argparse.SUPPRESS)
    parser.add_argument("--stop", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pager:
        pager(args.pager, args.stop)
        return
    run(rows=args.rows, days=args.days)


if __name__ == "__main__":
    main()
