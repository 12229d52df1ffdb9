import base64
import io
import threading
from datetime import timedelta

import av
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection
from django.utils import timezone

from audit import services
from audit.models import FetchStatus, MediaType, Result, ResultStub
from audit.serializers import IngestSerializer
from audit.services import ingest as ingest_module
from audit.tests.factories import ResultFactory, image_bytes

pytestmark = pytest.mark.django_db


def validated(media_type, items):
    serializer = IngestSerializer(data={"type": media_type, "data": items})
    assert serializer.is_valid(), serializer.errors
    return serializer.validated_data["data"]


@pytest.fixture
def ingest(django_capture_on_commit_callbacks):
    """Ingest and run what would follow the commit (the fetch tasks, in-process)."""

    def run(media_type, items):
        with django_capture_on_commit_callbacks(execute=True):
            return services.results_ingest(
                media_type=media_type, biz_type="default", items=validated(media_type, items)
            )

    return run


def image_item(**extra):
    return {
        "results": [{"scene": "porn", "label": "sexy", "suggestion": "review", "rate": 80}],
        **extra,
    }


def video_bytes() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), i * 20, "uint8"), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def test_fetch_stores_an_image_from_an_allowed_url(media_server, ingest):
    media_server.routes["/a.png"] = ("image/png", image_bytes((30, 20), "PNG"))
    ingest("image", [image_item(url=media_server.url("/a.png"))])
    result = Result.objects.get()
    assert result.fetch_status == FetchStatus.DONE, result.fetch_error
    assert (result.width, result.height, result.content_format) == (30, 20, "PNG")
    assert default_storage.exists(result.file.name)


def test_fetch_failure_is_recorded_and_the_result_kept(media_server, ingest):
    media_server.routes["/page"] = ("text/html", b"<html>")
    ingest(
        "image",
        [
            image_item(url=media_server.url("/page")),
            image_item(url=media_server.url("/missing.jpg")),
        ],
    )
    wrong_type, missing = Result.objects.order_by("id")
    assert wrong_type.fetch_status == missing.fetch_status == FetchStatus.FAILED
    assert "content type" in wrong_type.fetch_error.lower()
    assert "404" in missing.fetch_error


def test_fetch_refuses_a_decompression_bomb(media_server, settings, ingest):
    settings.RESULTS_MAX_IMAGE_PIXELS = 1000
    media_server.routes["/big.png"] = ("image/png", image_bytes((100, 100), "PNG"))
    ingest("image", [image_item(url=media_server.url("/big.png"))])
    result = Result.objects.get()
    assert result.fetch_status == FetchStatus.FAILED
    assert not result.file


def test_fetch_stores_a_video(media_server, ingest):
    media_server.routes["/v.mp4"] = ("video/mp4", video_bytes())
    item = image_item(url=media_server.url("/v.mp4"))
    ingest("video", [item])
    result = Result.objects.get()
    assert result.fetch_status == FetchStatus.DONE, result.fetch_error
    assert result.file.name.endswith(".mp4")
    assert (result.width, result.height) == (64, 48)


def test_fetch_twice_changes_nothing(media_server, ingest):
    media_server.routes["/a.png"] = ("image/png", image_bytes((30, 20), "PNG"))
    ingest("image", [image_item(url=media_server.url("/a.png"))])
    result = Result.objects.get()
    services.result_fetch(result_id=result.id)
    result.refresh_from_db()
    assert result.fetch_attempts == 1


def test_a_failed_ingest_leaves_no_rows_and_no_files(monkeypatch, media_root):
    inline = base64.b64encode(image_bytes()).decode()
    items = validated("image", [image_item(content=inline)])

    def fail(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(ingest_module, "_scenes_insert", fail)  # after the results' INSERT
    with pytest.raises(DatabaseError):
        services.results_ingest(media_type=MediaType.IMAGE, biz_type="default", items=items)
    assert Result.objects.count() == 0
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def race_items():
    return validated(
        "text",
        [
            {
                "taskId": "race-1",
                "content": "hi",
                "results": [
                    {"scene": "antispam", "label": "normal", "suggestion": "pass", "rate": 99}
                ],
            }
        ],
    )


@pytest.mark.django_db(transaction=True)
def test_two_requests_with_the_same_task_id_store_it_once(monkeypatch):
    """The first request pauses between its check and its insert; the second one, sent
    meanwhile, must wait and then find the first one's row, not store a second. (PostgreSQL:
    the advisory lock on the task id; SQLite: the IMMEDIATE transaction of the first.)"""
    paused, release = threading.Event(), threading.Event()
    original = ingest_module._result_build

    def slow_build(*args, **kwargs):
        if threading.current_thread().name == "first":
            paused.set()
            release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_result_build", slow_build)
    outcomes = {}

    def ingest():
        try:
            [outcomes[threading.current_thread().name]] = services.results_ingest(
                media_type=MediaType.TEXT, biz_type="default", items=race_items()
            )
        finally:
            connection.close()

    first = threading.Thread(target=ingest, name="first")
    second = threading.Thread(target=ingest, name="second")
    first.start()
    assert paused.wait(10)
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting for the first request's lock on "race-1"
    release.set()
    first.join(10)
    second.join(10)
    assert outcomes["first"].created is True
    assert outcomes["second"].created is False
    assert outcomes["second"].result.id == outcomes["first"].result.id
    assert Result.objects.filter(task_id="race-1").count() == 1


def test_a_resent_task_id_returns_the_stored_result():
    [first] = services.results_ingest(
        media_type=MediaType.TEXT, biz_type="default", items=race_items()
    )
    [again] = services.results_ingest(
        media_type=MediaType.TEXT, biz_type="default", items=race_items()
    )
    assert first.created and not again.created
    assert again.result.id == first.result.id
    assert ResultStub.objects.get(task_id="race-1").result_id == first.result.id


def test_stale_fetches_are_found_for_resending():
    old = ResultFactory(
        media_type="image",
        fetch_status=FetchStatus.PENDING,
        created_at=timezone.now() - timedelta(hours=1),
    )
    ResultFactory(media_type="image", fetch_status=FetchStatus.PENDING)
    ResultFactory(
        media_type="image",
        fetch_status=FetchStatus.DONE,
        created_at=timezone.now() - timedelta(hours=1),
    )
    assert services.results_fetch_stale() == [old.id]
