"""Decode guards for untrusted images (Pillow) and videos (PyAV).

Both functions either return a small description of a file that really decodes, or raise
MediaError with a message meant for API clients and reviewers.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import av
from PIL import Image, UnidentifiedImageError

ALLOWED_IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
IMAGE_CONTENT_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp")
# application/octet-stream is what many CDNs and object stores send for video. Accepting it is
# safe because video_inspect() trusts the bytes, not the label: the container is sniffed and
# must be MP4/MOV or Matroska/WebM.
VIDEO_CONTENT_TYPES = (
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "video/x-matroska",
    "application/octet-stream",
)

_IMAGE_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp"}
_SUPPORTED_IMAGES = "JPEG, PNG, GIF, WEBP or BMP"
_SUPPORTED_VIDEOS = "MP4, MOV, WebM or MKV"

# The allow-list of containers: FFmpeg demuxer to force -> its full name, as FFmpeg reports it
# when it detects the format itself. Which one applies is decided from the file's first bytes.
_DEMUXERS = {"mov": "mov,mp4,m4a,3gp,3g2,mj2", "matroska": "matroska,webm"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # Matroska and WebM
_ISO_BMFF_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}  # MP4, MOV


class MediaError(ValueError):
    """The file is not an acceptable image or video. The message is shown to users."""


# --- Images ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    extension: str


def image_inspect(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Check that ``data`` is a JPEG/PNG/GIF/WEBP/BMP of at most ``max_pixels`` that decodes."""
    # Pillow only *warns* between Image.MAX_IMAGE_PIXELS and twice that; here a bomb is always
    # an error. (catch_warnings is process-wide, so under threads this is only belt and
    # braces: the explicit max_pixels check below is what enforces the limit.)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=ALLOWED_IMAGE_FORMATS) as image:
                return _image_check(image, max_pixels)
        except MediaError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise MediaError("Image dimensions are too large to decode safely.") from exc
        except UnidentifiedImageError as exc:
            raise MediaError(f"Not a supported image format: use {_SUPPORTED_IMAGES}.") from exc
        except Exception as exc:  # Pillow raises many exception types on malformed input
            raise MediaError("The image is corrupt or truncated and cannot be decoded.") from exc


def _image_check(image: Image.Image, max_pixels: int) -> ImageInfo:
    # JPEGs with several pictures (phone cameras) open as "MPO": still a JPEG file.
    image_format = "JPEG" if image.format == "MPO" else image.format
    width, height = image.size
    _check_pixels(width, height, max_pixels)  # from the header, before any decoding
    frames = getattr(image, "n_frames", 1)
    if frames * width * height > max_pixels:
        raise MediaError(
            f"Animation is too large: {frames} frames of {width}x{height} pixels exceed "
            f"the limit of {max_pixels} pixels in total."
        )
    if image_format == "JPEG":
        # Decoding at 1/8 scale still reads every coded block, so truncated or corrupt data
        # fails just the same, at a fraction of the cost of a full-size decode.
        image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
    for index in range(frames):
        image.seek(index)
        _check_pixels(*image.size, max_pixels)  # a GIF frame may enlarge the canvas
        image.load()  # full decode: truncated or corrupt data fails here
    return ImageInfo(image_format, width, height, _IMAGE_EXTENSIONS[image_format])


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise MediaError("The image has no pixels.")
    if width * height > max_pixels:
        raise MediaError(
            f"Image is too large: {width}x{height} pixels exceeds the limit of {max_pixels}."
        )


# --- Videos ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    format: str
    extension: str
    duration: float | None
    width: int | None
    height: int | None


def video_inspect(path: str | os.PathLike, *, max_pixels: int = 50_000_000) -> VideoInfo:
    """Check that the local file at ``path`` is an MP4/MOV/WebM/MKV video that decodes.

    FFmpeg's auto-detection would happily open playlists (HLS, concat, SDP, ...) that make it
    read other files or fetch URLs. So the container is recognised from its first bytes, that
    demuxer is forced, and only the ``file`` protocol is allowed in any case.
    """
    with open(path, "rb") as file:
        head = file.read(64)
    demuxer = _sniff_demuxer(head)
    try:
        with av.open(
            os.fspath(path),
            format=demuxer,
            container_options={"protocol_whitelist": "file"},
            metadata_errors="replace",
        ) as container:
            return _video_check(container, demuxer, head, max_pixels)
    except MediaError:
        raise
    except Exception as exc:  # PyAV/FFmpeg raise many exception types on malformed input
        raise MediaError("The video is corrupt or truncated and cannot be decoded.") from exc


def video_open(path: str | os.PathLike):
    """Open the local video at ``path`` for decoding, with video_inspect()'s protections.

    Raises MediaError unless the file starts like MP4/MOV/WebM/MKV; PyAV's errors otherwise.
    The caller closes the container (it is a context manager).
    """
    with open(path, "rb") as file:
        demuxer = _sniff_demuxer(file.read(64))
    return av.open(
        os.fspath(path),
        format=demuxer,
        container_options={"protocol_whitelist": "file"},
        metadata_errors="replace",
    )


def _sniff_demuxer(head: bytes) -> str:
    if head.startswith(_EBML_MAGIC):
        return "matroska"
    if head[4:8] in _ISO_BMFF_BOXES:
        return "mov"
    raise MediaError(f"Not a supported video format: use {_SUPPORTED_VIDEOS}.")


def _video_check(container, demuxer: str, head: bytes, max_pixels: int) -> VideoInfo:
    if not container.streams.video:
        raise MediaError("The file has no video stream.")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > max_pixels:
        raise MediaError(f"Video is too large: {width}x{height} exceeds {max_pixels} pixels.")
    frame = next(container.decode(stream), None)  # proves it is a real, decodable video
    if frame is None:
        raise MediaError("The video has no decodable frames.")
    if frame.width * frame.height > max_pixels:
        raise MediaError(f"Video is too large: frames exceed {max_pixels} pixels.")
    return VideoInfo(
        format=_DEMUXERS[demuxer],
        extension=_video_extension(container, demuxer, head),
        duration=_video_duration(container, stream),
        width=frame.width,
        height=frame.height,
    )


def _video_extension(container, demuxer: str, head: bytes) -> str:
    if demuxer == "matroska":
        return "webm" if b"webm" in head else "mkv"  # the EBML DocType, near the start
    return "mov" if container.metadata.get("major_brand", "").strip() == "qt" else "mp4"


def _video_duration(container, stream) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None
