"""Ingest throughput of POST /api/v1/results, against the naive baseline.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \
        .venv/bin/python benchmarks/ingest.py --ensure-rows 1000000

Both variants take the same requests (batches of 100 items of one type, a mix of image
URLs, video URLs and texts, each with two or three scene results) through the Django stack
in-process, with token authentication and the fetch tasks sent to the broker:
- ours: POST /api/v1/results (one validation pass, bulk inserts in one transaction, one
  broker message per request);
- naive: the textbook DRF endpoint, one serializer save per item (a row, its scene rows and
  a fetch task per item, each insert committed on its own).
The rows it adds are deleted at the end, so the store keeps the size it was given.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", "bench-ingest")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Permission  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.decorators import api_view  # noqa: E402
from rest_framework.response import Response  # noqa: E402

from audit import services, tasks  # noqa: E402
from audit.api import ResultPermission  # noqa: E402
from audit.models import FetchStatus, Result, ResultScene  # noqa: E402
from audit.serializers import ResultItemSerializer  # noqa: E402
from benchmarks.common import ensure_rows  # noqa: E402
from moderation_console.celery import app as celery_app  # noqa: E402

BATCH = 100


class NaiveResultSerializer(ResultItemSerializer):
    """The textbook endpoint: the same checks, then one save per item."""

    def create(self, validated_data):
        scene_results = validated_data["results"]
        worst = services.worst_scene(scene_results)
        now = timezone.now()
        result = Result.objects.create(
            media_type=self.context["media_type"],
            task_id=validated_data.get("task_id") or services.task_id_generate("image"),
            data_id=validated_data.get("data_id", ""),
            url=validated_data.get("url", ""),
            text=validated_data.get("text", ""),
            scene_results=scene_results,
            machine_suggestion=worst["suggestion"],
            machine_label=worst["label"],
            suggestion=worst["suggestion"],
            label=worst["label"],
            fetch_status=FetchStatus.PENDING if validated_data.get("url") else FetchStatus.NONE,
            created_at=now,
            expires_at=now + timedelta(days=7),
        )
        for r in scene_results:
            ResultScene.objects.create(
                result=result,
                scene=r["scene"],
                label=r["label"],
                suggestion=r["suggestion"],
                rate=r["rate"],
            )
        if result.url:
            tasks.result_fetch.delay(result.id)
        return result


@api_view(["POST"])
def naive_ingest(request):
    if not ResultPermission().has_permission(request, None):
        return Response(status=403)
    created = []
    for item in request.data["data"]:
        serializer = NaiveResultSerializer(data=item, context={"media_type": request.data["type"]})
        serializer.is_valid(raise_exception=True)
        created.append(serializer.save().task_id)
    return Response({"data": created}, status=201)


urlpatterns = [
    path("", include("moderation_console.urls")),
    path("bench/naive-results", naive_ingest),
]


def scene(name, label, suggestion, rate):
    return {"scene": name, "label": label, "suggestion": suggestion, "rate": rate}


def make_batch(run: str, index: int) -> dict:
    kind = ("image", "image", "text", "video")[index % 4]
    items = []
    for i in range(BATCH):
        item = {"dataId": f"post-{index}-{i}", "taskId": f"bench-{run}-{index}-{i}"}
        if kind == "text":
            item["content"] = f"limited offer {i}: cheap watches at shop{index}.example, call now"
            item["results"] = [scene("antispam", "ad", "block", 97.5)]
        else:
            item["url"] = f"https://cdn.example.com/{kind}/{index}/{i}.jpg"
            item["results"] = [
                scene("porn", "sexy", "review", 81.0),
                scene("terrorism", "normal", "pass", 99.1),
                scene("ad", "normal", "pass", 99.9),
            ]
        items.append(item)
    return {"type": kind, "bizType": "bench", "data": items}


def bench_client() -> Client:
    user, _ = get_user_model().objects.get_or_create(username="bench-ingest")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="audit", codename__in=["add_result", "view_result"]
        )
    )
    token, _ = Token.objects.get_or_create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_HOST="127.0.0.1")


def timed_run(client: Client, url: str, batches: list[dict]) -> list[float]:
    seconds = []
    for body in batches:
        start = time.perf_counter()
        response = client.post(url, body, content_type="application/json")
        seconds.append(time.perf_counter() - start)
        assert response.status_code == 201, response.content[:500]
    return seconds


def report(name: str, seconds: list[float]) -> float:
    rate = BATCH * len(seconds) / sum(seconds)
    p50 = statistics.median(seconds) * 1000
    print(f"{name:>6}: {rate:8.0f} results/s   median {p50:6.1f} ms per batch of {BATCH}")
    return rate


def queue_purge() -> None:
    """Drop the fetch tasks the run queued: their URLs point nowhere."""
    if celery_app.conf.task_always_eager:
        return
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(celery_app.conf.task_default_queue)


def run(*, batches: int, ensure: int, warmup: int = 3) -> dict:
    rows = ensure_rows(ensure)
    print(f"{connection.vendor}, {rows} results stored, {batches} batches of {BATCH} per variant")
    client = bench_client()
    started = timezone.now()
    run_id = uuid.uuid4().hex[:8]
    try:
        with override_settings(ROOT_URLCONF=__name__):
            plans = {
                name: [make_batch(f"{run_id}{name}", i) for i in range(batches + warmup)]
                for name in ("ours", "naive")
            }
            ours = timed_run(client, "/api/v1/results", plans["ours"])[warmup:]
            naive = timed_run(client, "/bench/naive-results", plans["naive"])[warmup:]
    finally:
        Result.objects.filter(created_at__gte=started, task_id__startswith="bench-").delete()
        queue_purge()
    ours_rate, naive_rate = report("ours", ours), report("naive", naive)
    ratio = ours_rate / naive_rate
    print(f" ratio: {ratio:.1f}x the naive baseline (targets: >= 2000 results/s and >= 5x)")
    return {"ours": ours_rate, "naive": naive_rate, "ratio": ratio}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=100, help="timed requests per variant")
    parser.add_argument(
        "--ensure-rows",
        type=int,
        default=1_000_000,
        help="seed demo results until the store holds this many",
    )
    args = parser.parse_args(argv)
    if not os.environ.get("CELERY_BROKER_URL"):
        sys.exit(
            "Set CELERY_BROKER_URL (Redis): with in-process tasks the fetches would run "
            "inside the requests and be timed too."
        )
    run(batches=args.batches, ensure=args.ensure_rows)


if __name__ == "__main__":
    main()
