"""What the benchmarks share (imported after django.setup())."""

import os
import statistics
import time
from pathlib import Path

from django.core.management import call_command

from audit.models import Result


def ensure_rows(wanted: int) -> int:
    """Seed demo results until the store holds `wanted` (never removes any)."""
    have = Result.objects.count()
    if have < wanted:
        print(f"seeding {wanted - have} results (have {have}) ...", flush=True)
        call_command("seed_demo", count=wanted - have, no_accounts=True)
    return Result.objects.count()


def timed(call, repeat: int) -> list[float]:
    """Seconds per call, after one untimed warm-up call."""
    call()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: a value that was measured, never an interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def resident_mb() -> float:
    """This process's resident memory in MB (0 where /proc is not there)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:  # not Linux
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
