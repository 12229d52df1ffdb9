import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from audit.tests.factories import ResultFactory, UserFactory, image_bytes
from audit.tests.test_thumbnails import video_bytes

pytestmark = pytest.mark.django_db

VIDEO = video_bytes(frames=20)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The real hasher takes a third of a second per user, which is most of this module's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def reviewer_client(client):
    user = UserFactory()
    user.groups.add(Group.objects.get(name="Reviewer"))
    client.force_login(user)
    return client


@pytest.fixture
def image_result():
    name = default_storage.save("results/a.jpg", ContentFile(image_bytes((640, 480))))
    return ResultFactory(media_type="image", task_id="img-1", file=name)


@pytest.fixture
def video_result():
    name = default_storage.save("results/v.mp4", ContentFile(VIDEO))
    return ResultFactory(media_type="video", task_id="vid-1", file=name, duration=2.0)


def body(response) -> bytes:
    # Reading a streamed response to the end closes it (and its file), as a server would.
    return b"".join(response.streaming_content) if response.streaming else response.content


def media_urls(image_task="img-1", video_task="vid-1") -> list[str]:
    return [
        reverse("audit_media:thumb", args=[image_task]),
        reverse("audit_media:file", args=[image_task]),
        reverse("audit_media:poster", args=[video_task]),
        reverse("audit_media:frame", args=[video_task, "1.5"]),
        reverse("audit_media:file", args=[video_task]),
    ]


def assert_protected(response):
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, max-age=86400"


# --- Permissions ----------------------------------------------------------------------------


@pytest.mark.usefixtures("image_result", "video_result")
def test_anonymous_users_are_sent_to_log_in(client):
    for url in media_urls():
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.usefixtures("image_result", "video_result")
def test_users_without_view_result_are_refused(client):
    client.force_login(UserFactory())
    for url in media_urls():
        assert client.get(url).status_code == 403


@pytest.mark.usefixtures("image_result", "video_result")
def test_reviewers_get_the_media_with_protective_headers(reviewer_client):
    for url in media_urls():
        response = reviewer_client.get(url)
        assert response.status_code == 200, url
        assert_protected(response)
        body(response)


def test_media_cannot_be_posted_to(reviewer_client, image_result):
    url = reverse("audit_media:thumb", args=[image_result.task_id])
    assert reviewer_client.post(url).status_code == 405


# --- Thumbnails, posters, frames ------------------------------------------------------------


def test_thumb_is_a_jpeg(reviewer_client, image_result):
    response = reviewer_client.get(reverse("audit_media:thumb", args=[image_result.task_id]))
    assert response["Content-Type"] == "image/jpeg"
    assert body(response).startswith(b"\xff\xd8")


def test_poster_and_frame_are_jpegs(reviewer_client, video_result):
    for url in (
        reverse("audit_media:poster", args=[video_result.task_id]),
        reverse("audit_media:frame", args=[video_result.task_id, "0.5"]),
        reverse("audit_media:frame", args=[video_result.task_id, "2"]),
    ):
        response = reviewer_client.get(url)
        assert response["Content-Type"] == "image/jpeg"
        assert body(response).startswith(b"\xff\xd8")


@pytest.mark.parametrize("offset", ["0", "1.5", "0.30000000000000004", "999999"])
def test_a_decimal_offset_is_a_frame(reviewer_client, video_result, offset):
    url = reverse("audit_media:frame", args=[video_result.task_id, offset])
    response = reviewer_client.get(url)
    assert response.status_code == 200
    assert body(response).startswith(b"\xff\xd8")


@pytest.mark.parametrize("offset", ["abc", "nan", "inf", "-1", "1e3", "1.5.0", "1_0", "0x10"])
def test_a_garbage_offset_is_not_found(reviewer_client, video_result, offset):
    url = reverse("audit_media:frame", args=[video_result.task_id, offset])
    assert reviewer_client.get(url).status_code == 404


def test_unknown_tasks_are_not_found(reviewer_client):
    for url in media_urls("nope", "nope-either"):
        assert reviewer_client.get(url).status_code == 404


def test_media_of_the_wrong_type_is_not_found(reviewer_client, image_result, video_result):
    text = ResultFactory(task_id="txt-1")
    for url in (
        reverse("audit_media:thumb", args=[video_result.task_id]),
        reverse("audit_media:poster", args=[image_result.task_id]),
        reverse("audit_media:frame", args=[image_result.task_id, "1"]),
        reverse("audit_media:thumb", args=[text.task_id]),
        reverse("audit_media:file", args=[text.task_id]),
    ):
        assert reviewer_client.get(url).status_code == 404, url


def test_results_without_a_file_are_not_found(reviewer_client):
    ResultFactory(media_type="image", task_id="pending", file="", fetch_status="pending")
    ResultFactory(media_type="video", task_id="failed", file="", fetch_status="failed")
    ResultFactory(media_type="image", task_id="gone", file="results/gone.jpg")
    for url in media_urls("pending", "failed") + media_urls("gone", "failed"):
        assert reviewer_client.get(url).status_code == 404, url


def test_corrupt_files_are_not_found_rather_than_an_error(reviewer_client):
    broken = default_storage.save("results/bad.jpg", ContentFile(b"\xff\xd8\xff garbage"))
    ResultFactory(media_type="image", task_id="bad-img", file=broken)
    broken = default_storage.save("results/bad.mp4", ContentFile(VIDEO[:1000]))
    ResultFactory(media_type="video", task_id="bad-vid", file=broken)
    for url in (
        reverse("audit_media:thumb", args=["bad-img"]),
        reverse("audit_media:poster", args=["bad-vid"]),
        reverse("audit_media:frame", args=["bad-vid", "1"]),
    ):
        assert reviewer_client.get(url).status_code == 404, url


# --- Files and byte ranges ------------------------------------------------------------------


def test_file_is_the_stored_image(reviewer_client, image_result):
    response = reviewer_client.get(reverse("audit_media:file", args=[image_result.task_id]))
    assert response["Content-Type"] == "image/jpeg"
    assert body(response) == image_bytes((640, 480))


def test_file_without_a_range_is_the_whole_video(reviewer_client, video_result):
    response = reviewer_client.get(reverse("audit_media:file", args=[video_result.task_id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mp4"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(VIDEO))
    assert body(response) == VIDEO


@pytest.mark.parametrize(
    "header, first, last",
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, len(VIDEO) - 1),
        ("bytes=-50", len(VIDEO) - 50, len(VIDEO) - 1),
        ("bytes=10-999999999", 10, len(VIDEO) - 1),
        ("bytes=-999999999", 0, len(VIDEO) - 1),
        ("bytes=7-7", 7, 7),
    ],
)
def test_a_range_gets_partial_content(reviewer_client, video_result, header, first, last):
    url = reverse("audit_media:file", args=[video_result.task_id])
    response = reviewer_client.get(url, headers={"Range": header})
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(VIDEO)}"
    assert response["Content-Length"] == str(last - first + 1)
    assert response["Content-Type"] == "video/mp4"
    assert_protected(response)
    assert body(response) == VIDEO[first : last + 1]


@pytest.mark.parametrize(
    "header", [f"bytes={len(VIDEO)}-", f"bytes={len(VIDEO) + 5}-9999999", "bytes=-0"]
)
def test_an_unsatisfiable_range_gets_416(reviewer_client, video_result, header):
    url = reverse("audit_media:file", args=[video_result.task_id])
    response = reviewer_client.get(url, headers={"Range": header})
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(VIDEO)}"


@pytest.mark.parametrize(
    "header",
    ["bytes=abc", "bytes=5-2", "bytes=0-1,5-9", "items=0-9", "bytes=-", "bytes=" + "9" * 40],
)
def test_a_range_we_do_not_serve_gets_the_whole_file(reviewer_client, video_result, header):
    url = reverse("audit_media:file", args=[video_result.task_id])
    response = reviewer_client.get(url, headers={"Range": header})
    assert response.status_code == 200
    assert body(response) == VIDEO


def test_a_range_with_if_range_gets_the_whole_file(reviewer_client, video_result):
    url = reverse("audit_media:file", args=[video_result.task_id])
    response = reviewer_client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"x"'})
    assert response.status_code == 200
    assert body(response) == VIDEO


def test_a_range_of_an_image_works_too(reviewer_client, image_result):
    url = reverse("audit_media:file", args=[image_result.task_id])
    response = reviewer_client.get(url, headers={"Range": "bytes=0-1"})
    assert response.status_code == 206
    assert body(response) == b"\xff\xd8"
