"""Removing a day of results: dropping its partitions, against a batched DELETE of the same
kind of rows followed by the VACUUM it needs. PostgreSQL only; it destroys what it measures.

    createdb -h 127.0.0.1 -U postgres bench_purge
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_purge .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_purge \\
        .venv/bin/python benchmarks/purge.py --rows 1000000

Setup, every run: the result store is emptied (TRUNCATE), then `seed_demo` stores --rows
results spread evenly over the last 7 days (~143,000 a day at 1M) with their scene rows and
stubs, and fingerprint rows like the real ones are added by COPY (images: exact + PDQ + 7
flipped/rotated forms + 1-3 cropped forms + 3 or 6 crophash codes and their ~2 KB of
thumbnails, benchmarks/codes.py image_crop_rows; texts: exact + 32 LSH bands + MinHash;
videos: file + 10 frames).

Timed, with the clock moved forward so that one calendar day at a time has expired:
- baseline: the oldest full day removed as a plain table must: the purge's own batched DELETE
  (5,000 results a transaction; the ORM clears scenes, fingerprints and decision links), then
  VACUUM of the tables it deleted from;
- ours: --drops days removed one at a time by `results_purge()`, which drops their
  partitions. Each is a copy of the newest full day, stored (untimed, then VACUUM ANALYZE, so
  autovacuum stays out of the windows) as a day older than any other: the store keeps its size
  and the page figure rests on a dozen drops rather than the five full days a seeding gives.
  The partitions a run makes ahead (PARTITIONS_AHEAD days past its clock) are made before it,
  untimed: with the clock moved back a day per drop they would otherwise be days an earlier
  drop removed, a few drops out of twelve making them. What a real daily run adds by making
  the one new day is timed on its own and printed.
- --paces: the purge's rests (purge.PACE_SHARE) taken in turn by the drops, so that settings
  are compared on the same store in the same minutes (the machine's own drift is larger than
  their difference); each gets its figures.
Each prints seconds, WAL written (pg_current_wal_insert_lsn, after a CHECKPOINT) and rows.

Meanwhile another process requests the Audit page (image tab) without pause, one request at a
time, the same request throughout. The tab counts are computed once and kept for the whole
run (the app caches them for 30 s): a refresh landing in a window would otherwise decide the
p95 of its few dozen requests by itself, whatever the purge does. A request counts for a
window if it overlaps it. Each timed step starts SETTLE seconds after its CHECKPOINT, so the
checkpoint's writes are not charged to it. "Before" is measured twice: a quiet window ahead of
all purges, and the settle second before each drop (requests wholly inside it), which shares
the drop's background load when the machine is shared. Printed: n, p95, median and maximum of
each, the ratio of the p95 during the drops to either "before", and the load average.
"""

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from audit import partitions  # noqa: E402
from audit.models import MediaType, PurgeRun, Result, ResultFingerprint  # noqa: E402
from audit.services import purge  # noqa: E402
from benchmarks import codes as codes_bench  # noqa: E402
from benchmarks.common import percentile  # noqa: E402
from samples.fingerprint_base import FingerprintKind as Kind  # noqa: E402

DAY = timedelta(days=1)
FP_FIELDS = ("result_id", "kind", "key", "code", "quality", "form")
FORMS = ("flip-h", "flip-v", "rot90", "rot180", "rot270", "transpose", "transverse")
TARGETS = {"seconds": 1.0, "speedup": 10.0, "wal_ratio": 100.0, "page_p95_growth": 0.20}
QUIET_SECONDS = 10
SETTLE = 1.0  # seconds between a CHECKPOINT and the step it precedes
# Seconds after storing a day's copy: the copy went through shared buffers, and the page's own
# pages come back into them with its next requests.
COPY_SETTLE = 5.0


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
        for row in codes_bench.image_crop_rows(rng):  # cropped forms, crophash (issue 8)
            yield (result_id, *row)
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


def measured(step, settle: float = SETTLE) -> dict:
    checkpoint()
    settled = time.perf_counter()
    time.sleep(settle)
    wal, started = wal_position(), time.perf_counter()
    removed = step()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "wal": wal_position() - wal,
        "rows": removed,
        "start": started,
        "settled": settled,
    }


def day_rows(day) -> int:
    low, high = partitions.day_bounds(day)
    return Result.objects.filter(id__gte=low, id__lt=high).count()


def baseline_delete(day) -> int:
    """The batched DELETE a plain table needs (the purge's own), then VACUUM."""
    now = purge_clock(day)
    run = PurgeRun(started_at=now, cutoff=now, status="running")
    purge._purge_rows(run, now)
    tables = [s.table for s in partitions.partitioned_tables() if s.table != "audit_resultstub"]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM {partitions.quote(partitions.partition_name(table, day))}")
    return run.rows_deleted


def purge_clock(day) -> datetime:
    """The first moment at which every result of `day` has expired."""
    return datetime.combine(day + DAY, datetime.min.time(), UTC) + retention()


def days_ahead_ensure(now: datetime) -> int:
    """The partitions `results_purge(now=now)` makes ahead (untimed before each drop)."""
    with connection.cursor() as cursor:
        return partitions.ensure_days(
            cursor, now.date(), now.date() + timedelta(days=purge.PARTITIONS_AHEAD)
        )


def day_make() -> float:
    """Seconds to make one day's partitions, as a daily run does for the day ahead: the day
    after the last one that has them (an earlier run may have made some), dropped again."""
    with connection.cursor() as cursor:
        day = partitions.partition_days(cursor, Result._meta.db_table)[-1] + DAY
        started = time.perf_counter()
        with transaction.atomic():
            created = partitions.ensure_days(cursor, day, day)
        seconds = time.perf_counter() - started
        assert created == len(partitions.partitioned_tables()), created
        partitions.drop_day(cursor, day)
    return seconds


def drop_day(day, statements: list | None = None) -> int:
    """The purge of `day`; `statements` gets (seconds, SQL) of each statement it ran."""
    now = purge_clock(day)

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((time.perf_counter() - started, " ".join(sql.split())[:90]))

    with connection.execute_wrapper(timed) if statements is not None else nullcontext():
        run = purge.results_purge(now=now)
    assert run.partitions_dropped == [day.isoformat()], run.partitions_dropped
    return run.results_removed


def where_it_went(figure: dict) -> str:
    """A drop's seconds: in SQL statements (the slowest shown), resting, and the rest: the
    commits, where PostgreSQL unlinks the dropped files (the kernel frees their cached
    pages: ~0.4 ms per MB here), and Python."""
    statements = figure["statements"]
    in_sql = sum(seconds for seconds, _ in statements)
    slowest = sorted(statements, reverse=True)[:6]
    lines = [
        f"  where the slowest drop's {figure['seconds']:.3f} s went: {len(statements)} "
        f"statements {in_sql:.3f} s, rests {figure['rested']:.3f} s, commits and the rest "
        f"{figure['seconds'] - in_sql - figure['rested']:.3f} s; slowest statements:"
    ]
    lines += [f"    {seconds * 1000:7.1f} ms  {sql}" for seconds, sql in slowest]
    return "\n".join(lines)


def retention() -> timedelta:
    return timedelta(days=settings.RESULT_RETENTION_DAYS)


def pager(out: str, stop: str) -> None:
    """Runs in its own process: request the Audit page until `stop` exists; write
    'start_perf_counter duration' lines (perf_counter is system-wide on Linux)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from audit import selectors
    from audit.tests.factories import user_in

    selectors.QUEUE_COUNTS_TTL = None  # computed by the first request, then kept (see above)

    user = get_user_model().objects.filter(username="bench-purge").first() or user_in(
        "Reviewer", username="bench-purge"
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    client.get("/audit/?type=image")  # loads what a first request loads
    # This process's own full garbage collections (every ~8 s, 80-120 ms over Django's
    # long-lived objects) would land in the windows at random; the server's code is the same.
    gc.freeze()
    with open(out, "w") as f:
        while not os.path.exists(stop):
            started = time.perf_counter()
            response = client.get("/audit/?type=image")
            assert response.status_code == 200
            f.write(f"{started} {time.perf_counter() - started}\n")
            f.flush()


def page_times(
    path: str, windows: list[tuple[float, float]], within: bool = False
) -> list[list[float]]:
    """Durations of the requests that overlap each window (or, `within`, lie inside it)."""
    samples = [tuple(map(float, line.split())) for line in Path(path).read_text().splitlines()]
    if within:
        return [[d for s, d in samples if s >= begin and s + d <= end] for begin, end in windows]
    return [[d for s, d in samples if s < end and s + d > begin] for begin, end in windows]


def day_copy(source, target) -> int:
    """Store a copy of `source`'s results (scenes, fingerprints, stubs) as day `target`: ids
    and times shifted by whole days. Then VACUUM ANALYZE the copy, so that autovacuum finds
    nothing to do in it while the drops are timed."""
    shift = partitions.day_bounds(source)[0] - partitions.day_bounds(target)[0]
    days = (source - target).days
    specs = list(reversed(partitions.partitioned_tables()))  # results first
    with transaction.atomic(), connection.cursor() as cursor:
        for spec in specs:
            partitions.ensure_day(cursor, spec, target)
            cursor.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s "
                "ORDER BY ordinal_position",
                [spec.table],
            )
            columns, values, params = [], [], []
            for column, kind in cursor.fetchall():
                columns.append(partitions.quote(column))
                if column == spec.key:
                    values.append(f"{partitions.quote(column)} - %s")
                    params.append(shift)
                elif kind == "timestamp with time zone":
                    values.append(f"{partitions.quote(column)} - make_interval(days => %s)")
                    params.append(days)
                else:
                    values.append(partitions.quote(column))
            into = partitions.quote(partitions.partition_name(spec.table, target))
            source_table = partitions.quote(partitions.partition_name(spec.table, source))
            copy = f"INSERT INTO {into} ({', '.join(columns)}) SELECT {', '.join(values)} "
            cursor.execute(copy + f"FROM {source_table}", params)  # noqa: S608
    with connection.cursor() as cursor:
        for spec in specs:
            name = partitions.quote(partitions.partition_name(spec.table, target))
            cursor.execute(f"VACUUM (ANALYZE) {name}")
    return day_rows(target)


def run(*, rows: int, drops: int, page_load: bool = True, paces: list[float] | None = None) -> dict:
    assert connection.vendor == "postgresql", "the partition purge is PostgreSQL's"
    paces = paces or [purge.PACE_SHARE]
    started = time.perf_counter()
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    reset_and_seed(rows)
    print(f"seeded {rows:,} results in {time.perf_counter() - started:.0f} s", flush=True)
    with connection.cursor() as cursor:
        stored = [d for d in partitions.partition_days(cursor, "audit_result") if day_rows(d)]
    first, full = stored[0], stored[1:-1]  # the oldest and newest days are partial
    assert len(full) >= 2, "need at least two full days: seed more rows"
    # Untimed: the partial oldest day goes, and the partitions ahead of the last "now" exist.
    purge.results_purge(now=purge_clock(first))
    with connection.cursor() as cursor:
        last = full[-1] + retention() + timedelta(days=purge.PARTITIONS_AHEAD + 2)
        partitions.ensure_days(cursor, full[0], last)
    made = day_make()

    scratch = tempfile.mkdtemp()
    out, stop = f"{scratch}/pages.txt", f"{scratch}/stop"
    process = None
    if page_load:
        process = subprocess.Popen(
            [sys.executable, __file__, "--pager", out, "--stop", stop], env=os.environ.copy()
        )
        time.sleep(8)  # warm up, then a quiet window
    quiet_begin = time.perf_counter()
    time.sleep(QUIET_SECONDS if page_load else 0)
    quiet = (quiet_begin, time.perf_counter())

    figures = {}
    size = day_rows(full[0])
    base = measured(lambda: baseline_delete(full[0]), settle=SETTLE if page_load else 0)
    base["size"] = size
    with connection.cursor() as cursor:
        partitions.drop_day(cursor, full[0])  # the emptied partitions, untimed
    # Each drop removes a copy of the newest full day, stored as a day older than any other
    # (untimed), so the store keeps its size and there are as many drops to time as asked.
    template, ours, store = full[-1], [], Result.objects.count()
    setting = purge.PACE_SHARE
    for number in range(1, drops + 1):
        day, pace = first - timedelta(days=number), paces[(number - 1) % len(paces)]
        size = day_copy(template, day)
        days_ahead_ensure(purge_clock(day))
        if page_load:
            time.sleep(COPY_SETTLE)
        statements, rests = [], []
        purge.PACE_SHARE = pace
        purge.sleep = lambda seconds, rests=rests: (rests.append(seconds), time.sleep(seconds))
        figure = measured(
            lambda d=day, s=statements: drop_day(d, s), settle=SETTLE if page_load else 0
        )
        purge.sleep, purge.PACE_SHARE = time.sleep, setting
        figure.update(size=size, day=day, statements=statements, rested=sum(rests), pace=pace)
        ours.append(figure)
    if process:
        Path(stop).touch()
        process.wait(30)

    print(
        f"\none day of results (~{size:,}) out of {store + size:,} stored "
        f"(seeded {rows:,}; real schema):"
    )
    print(
        f"(the purge rests PACE_SHARE x as long as each piece over {purge.PACE_FROM * 1000:.0f} "
        "ms took: its seconds include those rests)"
    )
    print(f"{'':34} {'pace':>5} {'results':>9} {'seconds':>9} {'WAL MB':>9}")
    print(
        f"{'baseline: batched DELETE + VACUUM':34} {'':>5} {base['rows']:>9,} "
        f"{base['seconds']:>9.3f} {base['wal'] / 1e6:>9.2f}"
    )
    for figure in ours:
        print(
            f"{'ours: drop partitions ' + figure['day'].isoformat():34} {figure['pace']:>5g} "
            f"{figure['rows']:>9,} {figure['seconds']:>9.3f} {figure['wal'] / 1e6:>9.3f}"
        )
    print(
        f"(a daily run also makes the partitions of the day {purge.PARTITIONS_AHEAD} days "
        f"ahead: {made * 1000:.0f} ms, no page load yet)"
    )
    figures.update(baseline=base, ours=ours, made=made, paces={})
    if page_load:
        quiet_ms = [d * 1000 for d in page_times(out, [quiet])[0]]
        # The second before each drop, after its CHECKPOINT: the same background load as the
        # drop next to it (this machine is shared), none of the checkpoint's requests.
        befores = [(f["settled"], f["start"]) for f in ours]
        just_before_ms = [d * 1000 for ds in page_times(out, befores, within=True) for d in ds]
        delete = (base["start"], base["start"] + base["seconds"])
        figures.update(
            page_quiet=percentile(quiet_ms, 0.95),
            page_just_before=percentile(just_before_ms, 0.95),
            page_delete=[d * 1000 for d in page_times(out, [delete])[0]],
        )
    for pace in paces:
        mine = [f for f in ours if f["pace"] == pace]
        figures["paces"][pace] = verdict(base, mine, pace)
        if page_load:
            windows = [(f["start"], f["start"] + f["seconds"]) for f in mine]
            drops_ms = [d * 1000 for ds in page_times(out, windows) for d in ds]
            figures["paces"][pace].update(page_verdict(quiet_ms, just_before_ms, drops_ms))
    if page_load:
        print(f"  {'during the DELETE':38} {summary(figures['page_delete'])}")
    # The figures of the current setting, for callers that ran one pace.
    figures.update(figures["paces"][paces[0]])
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores here)")
    return figures


def verdict(base: dict, ours: list[dict], pace: float) -> dict:
    """Prints the drop targets for the drops made at `pace`."""
    worst = max(ours, key=lambda f: f["seconds"])
    most_wal = max(ours, key=lambda f: f["wal"])
    speedup = base["seconds"] / worst["seconds"]
    wal_ratio = base["wal"] / max(most_wal["wal"], 1)
    seconds = sorted(f["seconds"] for f in ours)
    print(
        f"\npace {pace:g}: {len(ours)} drops {seconds[0]:.3f}-{seconds[-1]:.3f} s, median "
        f"{seconds[len(seconds) // 2]:.3f}; slowest {worst['seconds']:.3f} s (target <= "
        f"{TARGETS['seconds']} s); {speedup:.0f}x faster than the DELETE (target >= "
        f"{TARGETS['speedup']:.0f}x); {wal_ratio:.0f}x less WAL (target >= "
        f"{TARGETS['wal_ratio']:.0f}x)"
    )
    print(where_it_went(worst))
    return {"worst": worst["seconds"], "speedup": speedup, "wal_ratio": wal_ratio}


def summary(ms: list[float]) -> str:
    return f"{len(ms):>5} {percentile(ms, 0.95):>7.1f} {percentile(ms, 0.5):>7.1f} {max(ms):>7.1f}"


def page_verdict(quiet_ms: list[float], just_before_ms: list[float], drops_ms: list[float]) -> dict:
    """Prints the Audit page's figures during a pace's drops against both "before"s."""
    during = percentile(drops_ms, 0.95)
    print(f"Audit page, one request at a time (ms):  {'n':>5} {'p95':>7} {'median':>7} {'max':>7}")
    for label, ms in (
        (f"quiet, the {QUIET_SECONDS} s before the purges", quiet_ms),
        (f"quiet, the {SETTLE:.0f} s before each drop (all)", just_before_ms),
        ("during these drops", drops_ms),
    ):
        if ms:
            print(f"  {label:38} {summary(ms)}")
    ratios = {}
    for key, label, ms in (
        ("quiet", "quiet window", quiet_ms),
        ("just_before", "seconds before each drop", just_before_ms),
    ):
        ratios[key] = during / percentile(ms, 0.95)
        met = "met" if ratios[key] - 1 <= TARGETS["page_p95_growth"] else "NOT met"
        print(
            f"p95 during the drops / p95 of the {label}: {ratios[key]:.2f} "
            f"({ratios[key] - 1:+.0%}; target <= +{TARGETS['page_p95_growth']:.0%}: {met})"
        )
    return {"page_during": during, "page_drops": drops_ms, "page_ratios": ratios}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--drops", type=int, default=12, help="days to drop (one at a time)")
    parser.add_argument("--pager", help=argparse.SUPPRESS)
    parser.add_argument("--stop", help=argparse.SUPPRESS)
    parser.add_argument(
        "--paces",
        default=str(purge.PACE_SHARE),
        help="the purge's rest per second of work (purge.PACE_SHARE), several comma-separated "
        "to compare them: the drops take them in turn",
    )
    args = parser.parse_args(argv)
    if args.pager:
        pager(args.pager, args.stop)
        return
    run(rows=args.rows, drops=args.drops, paces=[float(p) for p in args.paces.split(",")])


if __name__ == "__main__":
    main()
