"""What AccessKey signatures cost: /green/text/scan signed by the official SDK against the
project's own token-auth scan endpoint (POST /api/v1/scan/text), same text, same work.

    .venv/bin/python benchmarks/green_api.py --requests 500
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python benchmarks/green_api.py
    GREEN_REDIS_URL=redis://127.0.0.1:6379/11 DATABASE_URL=... .venv/bin/python benchmarks/...

In-process through Django's test client (no network, so the difference is ours): each signed
request is built by aliyun-python-sdk-core's own ROA signer (TextScanRequest, get_signed_header;
the signing is timed too), then checked by green.auth (the key from green.keystore's short
cache, HMAC-SHA1, Content-MD5, and the replay store: the table's INSERT, or with
GREEN_REDIS_URL one Redis round trip). The two kinds alternate, one text per request (a new
dataId each, so no signature repeats). Tasks are queued, not run (memory broker): the
fingerprinting that follows a scan is the same for both and happens in the worker.
The results and the key the run made are deleted at the end (its replay-store rows expire
with the date window and go with the purge).
"""

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402

django.setup()

from aliyunsdkgreen.request.v20180509 import TextScanRequest  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Permission  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from audit.models import Result  # noqa: E402
from benchmarks.common import percentile  # noqa: E402
from green import services  # noqa: E402
from green.models import AccessKey  # noqa: E402
from moderation_console.celery import app as celery_app  # noqa: E402

PREFIX = "bench-green-"
TEXT = "Fresh strawberries at the farmers market this Saturday, bring your own basket"
REGION = "cn-shanghai"


def _body(n: int) -> dict:
    return {"scenes": ["antispam"], "tasks": [{"dataId": f"{PREFIX}{n}", "content": TEXT}]}


def _user():
    user, _ = get_user_model().objects.get_or_create(username="bench-green")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="audit", codename="add_result")
    )
    return user


def _token_call(client: Client, token: str, n: int) -> None:
    response = client.post(
        "/api/v1/scan/text",
        _body(n),
        content_type="application/json",
        headers={"Authorization": f"Token {token}"},
    )
    assert response.status_code == 200, response.content


def _sdk_call(client: Client, key_id: str, secret: str, n: int) -> None:
    body = json.dumps(_body(n)).encode()
    request = TextScanRequest.TextScanRequest()
    request.set_accept_format("JSON")
    request.set_content(body)
    request.set_content_type("application/octet-stream")
    headers = request.get_signed_header(REGION, key_id, secret)
    content_type = headers.pop("Content-Type")
    response = client.post(
        request.get_url(REGION), body, content_type=content_type, headers=headers
    )
    assert response.status_code == 200, response.content


def run(*, requests: int = 300, warmup: int = 20) -> dict:
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    user = _user()
    token, _ = Token.objects.get_or_create(user=user)
    key, secret = services.access_key_issue(user=user, name="benchmark")
    client = Client(HTTP_HOST="127.0.0.1")
    calls = {
        "token": lambda n: _token_call(client, token.key, n),
        "signed": lambda n: _sdk_call(client, key.access_key_id, secret, n),
    }
    seconds = {name: [] for name in calls}
    run_id = uuid.uuid4().int % 10**9
    try:
        for n in range(warmup):
            for name, call in calls.items():
                call(run_id + n * 2 + (name == "signed"))
        for n in range(warmup, warmup + requests):
            for name, call in calls.items():  # alternate, so drift hits both alike
                start = time.perf_counter()
                call(run_id + n * 2 + (name == "signed"))
                seconds[name].append(time.perf_counter() - start)
    finally:
        celery_app.conf.task_always_eager = eager
        Result.objects.filter(data_id__startswith=PREFIX).delete()
        AccessKey.objects.filter(id=key.id).delete()
    return _report(seconds, requests)


def _report(seconds: dict[str, list[float]], requests: int) -> dict:
    figures = {
        name: {
            "rps": len(values) / sum(values),
            "p50": percentile(values, 0.50) * 1000,
            "p95": percentile(values, 0.95) * 1000,
        }
        for name, values in seconds.items()
    }
    figures["slower"] = figures["token"]["rps"] / figures["signed"]["rps"] - 1
    store = "Redis" if settings.GREEN_REDIS_URL else "table"
    print(
        f"{connection.vendor}, replay store: {store}, {requests} requests per kind, one text each"
    )
    labels = {"token": "token auth, /api/v1/scan/text", "signed": "SDK-signed, /green/text/scan"}
    for name, label in labels.items():
        f = figures[name]
        print(
            f"  {label:32} {f['rps']:7.1f} req/s   p50 {f['p50']:6.2f} ms   p95 {f['p95']:6.2f} ms"
        )
    print(f"  signature checking costs {figures['slower']:+.1%} in throughput")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    run(requests=args.requests, warmup=args.warmup)
