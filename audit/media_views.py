"""The media of results for the Audit pages: thumbnails, video posters and frames, the files.

The content is harmful by nature, so every view wants a signed-in user allowed to view
results, and every answer carries headers that stop a browser from sniffing it or running
anything in it. Media is served from our storage only; reviewers' browsers never load the
results' original URLs.
"""

import logging
import re

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_safe

from audit import thumbnails
from audit.access import signed_in_with
from audit.models import MediaType, Result

logger = logging.getLogger(__name__)

# By the extensions audit.services gives stored files (and seed_demo its demo files).
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
}
CHUNK_SIZE = 64 * 1024
# Plain decimal seconds, as a template prints a float offset ("1.5", "0.30000000000000004"):
# no signs, exponents, "nan" or "inf". thumbnails.frame_name rounds it to milliseconds.
_OFFSET = re.compile(r"\d{1,6}(\.\d{1,20})?")
# One range only; a header we don't understand is ignored, as RFC 9110 allows. The digit
# limit keeps int() away from absurd numbers.
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})", re.IGNORECASE)


@signed_in_with("audit.view_result")
@require_safe
def result_thumb(request, task_id: str):
    result = _result_get(task_id, MediaType.IMAGE)
    return _jpeg_response(thumbnails.thumbnail_name(result))


@signed_in_with("audit.view_result")
@require_safe
def result_poster(request, task_id: str):
    result = _result_get(task_id, MediaType.VIDEO)
    return _jpeg_response(thumbnails.poster_name(result))


@signed_in_with("audit.view_result")
@require_safe
def result_frame(request, task_id: str, offset: str):
    if not _OFFSET.fullmatch(offset):
        raise Http404("Not a frame offset.")
    result = _result_get(task_id, MediaType.VIDEO)
    return _jpeg_response(thumbnails.frame_name(result, float(offset)))


@signed_in_with("audit.view_result")
@require_safe
def result_file(request, task_id: str):
    """The stored file, with single byte ranges so that a <video> can seek."""
    name, content_type = _stored_file(_result_get(task_id, MediaType.IMAGE, MediaType.VIDEO))
    size = default_storage.size(name)
    # If-Range asks for the range only if the file is unchanged; we send no validators to
    # compare with, so the safe answer is the whole file.
    header = "" if "If-Range" in request.headers else request.headers.get("Range", "")
    byte_range = _byte_range(header, size)
    if byte_range is None:
        response = FileResponse(_open(name), content_type=content_type)
    else:
        response = _range_response(name, size, content_type, *byte_range)
    response["Accept-Ranges"] = "bytes"
    return _protected(response)


def _result_get(task_id: str, *media_types: str) -> Result:
    results = Result.objects.only("task_id", "media_type", "file", "duration")
    return get_object_or_404(results, task_id=task_id, media_type__in=media_types)


def _stored_file(result: Result) -> tuple[str, str]:
    name = result.file.name
    content_type = CONTENT_TYPES.get(name.rpartition(".")[2].lower())
    if not name or content_type is None:  # not fetched (yet), or not a file we stored
        raise Http404("No media for this result.")
    if not default_storage.exists(name):
        logger.warning("the file %s of result %s is missing", name, result.task_id)
        raise Http404("No media for this result.")
    return name, content_type


def _jpeg_response(name: str | None) -> FileResponse:
    if name is None:  # no file, or one that does not decode (thumbnails logged why)
        raise Http404("No media for this result.")
    return _protected(FileResponse(_open(name), content_type="image/jpeg"))


def _open(name: str):
    try:
        return default_storage.open(name, "rb")
    except FileNotFoundError as exc:  # deleted since we looked: a purge, say
        raise Http404("No media for this result.") from exc


def _protected(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    # Private: the content must not sit in shared caches. A day: thumbnails never change.
    response["Cache-Control"] = "private, max-age=86400"
    return response


# --- Byte ranges ----------------------------------------------------------------------------


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The first and last byte a Range header asks for, or None to send the whole file.

    first > last means the range cannot be satisfied.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first:  # "bytes=a-b" or "bytes=a-"
        first = int(first)
        if last and int(last) < first:
            return None  # an invalid range, so ignored
        return first, (min(int(last), size - 1) if last else size - 1)
    if last:  # "bytes=-n": the last n bytes
        return max(size - int(last), 0), size - 1
    return None


def _range_response(name: str, size: int, content_type: str, first: int, last: int):
    if first > last:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    length = last - first + 1
    response = StreamingHttpResponse(
        _file_chunks(name, first, length), status=206, content_type=content_type
    )
    response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Content-Length"] = str(length)
    return response


def _file_chunks(name: str, start: int, length: int):
    # The file is opened on the first read, so a response that is never sent opens nothing.
    with default_storage.open(name, "rb") as file:
        file.seek(start)
        while length > 0:
            chunk = file.read(min(CHUNK_SIZE, length))
            if not chunk:  # the file shrank since its size was read
                break
            length -= len(chunk)
            yield chunk
