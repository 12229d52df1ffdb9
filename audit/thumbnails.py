"""Small JPEGs of results for the Audit pages: image thumbnails, video posters and frames.

Each is made on first use and kept under thumbs/ in default_storage, keyed by the *source
file*, not the result: demo rows share a handful of files, and one thumbnail per file is enough.
They need the local filesystem (``default_storage.path``), as PyAV reads local files only.

Sources are untrusted: the decode guards of audit.media apply, and any failure to decode is
logged and answered with None, never raised.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import av
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from PIL import Image, ImageOps

from audit import media
from audit.models import MediaType, Result

logger = logging.getLogger(__name__)

THUMB_DIR = "thumbs"
JPEG_QUALITY = 80
# The poster is the frame at 10% of the video: the very first frames are often black or a
# fade-in, which would make every card look the same.
POSTER_POSITION = 0.1
# Seeking lands on the keyframe before an offset and frames are decoded forward from there.
# The cap keeps a video with very rare keyframes from holding a request for long.
MAX_FRAMES_DECODED = 600
# VideoFrame.rotation is counter-clockwise, like Pillow's ROTATE_* transposes.
_ROTATIONS = {
    90: Image.Transpose.ROTATE_90,
    -90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    -180: Image.Transpose.ROTATE_180,
}


def thumbnail_name(result: Result, size: int = 320) -> str | None:
    """The storage name of a JPEG of the image, longest side ``size``; None if there is none."""
    if result.media_type != MediaType.IMAGE:
        return None
    return _made_once(result, str(size), lambda path: _image_thumbnail(path, size))


def poster_name(result: Result, size: int = 320) -> str | None:
    """The storage name of a JPEG of an early frame of the video; None if there is none."""
    return frame_name(result, (result.duration or 0) * POSTER_POSITION, size)


def frame_name(result: Result, offset: float, size: int = 320) -> str | None:
    """The storage name of a JPEG of the video frame nearest ``offset`` seconds, or None."""
    if result.media_type != MediaType.VIDEO or not math.isfinite(offset) or offset < 0:
        return None
    if result.duration is not None:
        offset = min(offset, result.duration)
    offset = round(offset, 3)  # one file per millisecond, not one per spelling of a float
    return _made_once(
        result, f"{offset:.3f}s-{size}", lambda path: _video_frame(path, offset, size)
    )


# --- Storage --------------------------------------------------------------------------------


def _made_once(result: Result, variant: str, make: Callable[[Path], Image.Image]) -> str | None:
    source = _source_path(result)
    if source is None:
        return None
    try:
        name = _thumb_name(result.file.name, source, variant)
    except FileNotFoundError:  # deleted since we looked: a purge, say
        return None
    target = Path(default_storage.path(name))
    if target.exists():
        return name
    try:
        _write_atomically(make(source), target)
    except Exception:  # Pillow and PyAV raise many exception types on malformed input
        logger.warning("cannot make thumbnail %s of %s", variant, result.file.name, exc_info=True)
        return None
    return name


def _source_path(result: Result) -> Path | None:
    if not result.file.name:
        return None  # not fetched yet, or the fetch failed
    try:
        path = Path(default_storage.path(result.file.name))
    except SuspiciousFileOperation:  # a name outside MEDIA_ROOT
        logger.warning("result %s has a file outside the media root", result.pk)
        return None
    return path if path.is_file() else None


def _thumb_name(source_name: str, source: Path, variant: str) -> str:
    # The source's size and mtime are part of the key: seed_demo rewrites its files in place,
    # and a thumbnail of the old picture must never stand in for the new one.
    stat = source.stat()
    key = f"{source_name}\0{stat.st_size}\0{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{THUMB_DIR}/{digest[:2]}/{digest}-{variant}.jpg"


def thumbnails_delete(source_name: str) -> int:
    """Delete every thumbnail made of a stored file (before the file itself goes: the key
    needs its size and mtime). Returns how many."""
    try:
        source = Path(default_storage.path(source_name))
        prefix = Path(default_storage.path(_thumb_name(source_name, source, "x"))).parent
        digest = Path(_thumb_name(source_name, source, "x")).name.rsplit("-", 1)[0]
    except (FileNotFoundError, NotImplementedError):
        return 0
    removed = 0
    for thumb in prefix.glob(f"{digest}-*.jpg"):
        thumb.unlink(missing_ok=True)
        removed += 1
    return removed


def _write_atomically(image: Image.Image, target: Path) -> None:
    # Written beside the target, then renamed over it: a concurrent request sees no file or a
    # whole one, and two requests making the same thumbnail both succeed (the last rename wins,
    # with the same picture).
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            image.save(file, "JPEG", quality=JPEG_QUALITY, optimize=True)
        os.chmod(temp, settings.FILE_UPLOAD_PERMISSIONS or 0o644)  # mkstemp makes it 0600
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _check_pixels(width: int, height: int) -> None:
    if width * height > settings.RESULTS_MAX_IMAGE_PIXELS:
        raise media.MediaError(f"{width}x{height} pixels is too large to decode safely")


# --- Images ---------------------------------------------------------------------------------


def _image_thumbnail(path: Path, size: int) -> Image.Image:
    with Image.open(path, formats=media.ALLOWED_IMAGE_FORMATS) as source:
        _check_pixels(*source.size)  # from the header, before anything is decoded
        source.draft("RGB", (size, size))  # JPEG: decode at 1/2 to 1/8 scale, much faster
        ImageOps.exif_transpose(source, in_place=True)  # decodes (the first frame only)
        image = _rgb_or_rgba(source)
    image.thumbnail((size, size))
    return _on_white(image) if image.mode == "RGBA" else image


def _rgb_or_rgba(image: Image.Image) -> Image.Image:
    # Converted before resizing: a palette image would be resized nearest-neighbour.
    if image.mode.startswith("I"):
        # 16-bit greyscale PNG: convert() would clip it to white, so scale it to 8 bits first.
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _on_white(image: Image.Image) -> Image.Image:
    # Transparent areas as white, as a browser would show them on the page; JPEG has no alpha.
    background = Image.new("RGB", image.size, "white")
    background.paste(image, mask=image.getchannel("A"))
    return background


# --- Videos ---------------------------------------------------------------------------------


def _video_frame(path: Path, offset: float, size: int) -> Image.Image:
    with media.video_open(path) as container:
        if not container.streams.video:
            raise media.MediaError("the file has no video stream")
        stream = container.streams.video[0]
        _check_pixels(stream.codec_context.width, stream.codec_context.height)
        frame = _frame_near(container, stream, offset)
        if frame is None:
            raise media.MediaError("the video has no decodable frames")
        image = frame.to_image()
        transpose = _ROTATIONS.get(frame.rotation)  # phone videos are stored sideways
    if transpose is not None:
        image = image.transpose(transpose)
    image.thumbnail((size, size))
    return image


def _frame_near(container, stream, offset: float):
    """The decoded frame nearest ``offset`` seconds from the start, or None."""
    target = offset + (container.start_time or 0) / av.time_base
    if offset > 0:
        container.seek(int(target * av.time_base))  # the keyframe at or before the target
    before = None
    for count, frame in enumerate(container.decode(stream)):
        _check_pixels(frame.width, frame.height)  # a stream may change size midway
        if count >= MAX_FRAMES_DECODED:
            break
        if frame.time is None:
            continue
        if frame.time >= target:
            before_is_nearer = before is not None and target - before.time < frame.time - target
            return before if before_is_nearer else frame
        before = frame
    return before  # the offset is at or past the last frame
