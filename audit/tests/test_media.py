"""audit.media with real files: images made with Pillow, videos encoded with PyAV."""

import io
import random
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from PIL import Image

from audit.media import (
    IMAGE_CONTENT_TYPES,
    VIDEO_CONTENT_TYPES,
    ImageInfo,
    MediaError,
    VideoInfo,
    image_inspect,
    video_inspect,
)

MAX_PIXELS = 50_000_000


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, image_format, **params)
    return out.getvalue()


def gradient(size=(32, 24), mode="RGB") -> Image.Image:
    image = Image.new("RGB", size)
    image.putdata(
        [(x * 8 % 256, y * 10 % 256, 128) for y in range(size[1]) for x in range(size[0])]
    )
    return image.convert(mode)


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of one colour, written by hand: a real decompression bomb is a few
    kilobytes, and building it through Pillow would need the memory it is meant to protect."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    row = bytes(1 + (width + 7) // 8)  # filter byte, then 8 pixels per byte
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 500) for _ in range(height // 500))
    idat += compressor.compress(row * (height % 500)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


# --- Images ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        (encode(gradient(), "JPEG"), ImageInfo("JPEG", 32, 24, "jpg")),
        (encode(gradient(mode="RGBA"), "PNG"), ImageInfo("PNG", 32, 24, "png")),
        (encode(gradient(mode="P"), "PNG"), ImageInfo("PNG", 32, 24, "png")),
        (encode(gradient(mode="L"), "PNG"), ImageInfo("PNG", 32, 24, "png")),
        (encode(gradient(mode="P"), "GIF"), ImageInfo("GIF", 32, 24, "gif")),
        (encode(gradient(), "WEBP"), ImageInfo("WEBP", 32, 24, "webp")),
        (encode(gradient(), "WEBP", lossless=True), ImageInfo("WEBP", 32, 24, "webp")),
        (encode(gradient(), "BMP"), ImageInfo("BMP", 32, 24, "bmp")),
        (png_of_zeros(2000, 1000), ImageInfo("PNG", 2000, 1000, "png")),
    ],
    ids=[
        "jpeg",
        "png-rgba",
        "png-palette",
        "png-grey",
        "gif",
        "webp",
        "webp-lossless",
        "bmp",
        "png-1bit",
    ],
)
def test_supported_images(data, expected):
    assert image_inspect(data, max_pixels=MAX_PIXELS) == expected


@pytest.mark.parametrize("image_format", ["GIF", "WEBP", "PNG"])
def test_animated_images(image_format):
    frames = [gradient(), gradient().rotate(180), Image.new("RGB", (32, 24), "blue")]
    data = encode(frames[0], image_format, save_all=True, append_images=frames[1:], duration=100)
    info = image_inspect(data, max_pixels=MAX_PIXELS)
    assert (info.format, info.width, info.height) == (image_format, 32, 24)


def test_animation_total_pixels_are_capped():
    frames = [Image.new("RGB", (100, 100), colour) for colour in ("red", "green", "blue", "white")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert image_inspect(data, max_pixels=40_000).format == "GIF"  # 4 x 10,000 pixels
    with pytest.raises(MediaError, match="Animation is too large"):
        image_inspect(data, max_pixels=39_999)  # each frame alone would fit


def test_pixel_limit_is_inclusive():
    data = encode(gradient((100, 50)), "PNG")
    assert image_inspect(data, max_pixels=5000).width == 100
    with pytest.raises(MediaError, match="100x50"):
        image_inspect(data, max_pixels=4999)


def test_decompression_bomb_is_refused_without_decoding():
    bomb = png_of_zeros(20_000, 20_000)  # 400 megapixels in about 50 KB
    assert len(bomb) < 100_000
    started = time.monotonic()
    with pytest.raises(MediaError, match="too large"):
        image_inspect(bomb, max_pixels=MAX_PIXELS)
    assert time.monotonic() - started < 0.5  # decoding it would take seconds and 400 MB


def test_limit_does_not_depend_on_pillow_global(monkeypatch):
    """8000x8000 is under Pillow's own bomb limit (~89 MP), and even with that limit switched
    off globally, max_pixels still refuses it before decoding."""
    bomb = png_of_zeros(8000, 8000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    started = time.monotonic()
    with pytest.raises(MediaError, match="8000x8000"):
        image_inspect(bomb, max_pixels=MAX_PIXELS)
    assert time.monotonic() - started < 0.5


def test_pillow_bomb_warning_is_an_error(monkeypatch, recwarn):
    """Between Image.MAX_IMAGE_PIXELS and twice that Pillow only warns: here it refuses."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(MediaError, match="too large"):
        image_inspect(encode(gradient((40, 40)), "PNG"), max_pixels=MAX_PIXELS)  # 1,600 pixels
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize(
    "data",
    [
        encode(gradient(), "TIFF"),
        encode(gradient(), "ICO"),
        encode(gradient(), "PPM"),
        encode(gradient(), "PCX"),
        encode(gradient(), "EPS"),
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    ],
    ids=["tiff", "ico", "ppm", "pcx", "eps", "svg"],
)
def test_other_formats_are_refused(data):
    with pytest.raises(MediaError, match="Not a supported image format: use JPEG, PNG"):
        image_inspect(data, max_pixels=MAX_PIXELS)


def test_truncated_jpeg_is_refused():
    data = encode(gradient((256, 256)), "JPEG", quality=95)
    with pytest.raises(MediaError, match="corrupt or truncated"):
        image_inspect(data[: len(data) // 2], max_pixels=MAX_PIXELS)


def test_truncated_png_is_refused():
    data = encode(gradient((256, 256)), "PNG")
    with pytest.raises(MediaError, match="corrupt or truncated"):
        image_inspect(data[: len(data) - 200], max_pixels=MAX_PIXELS)


def test_corrupt_png_is_refused():
    data = bytearray(encode(gradient((64, 64)), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 20 : idat + 40] = bytes(20)  # breaks the zlib stream and the chunk CRC
    with pytest.raises(MediaError):
        image_inspect(bytes(data), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, world\n", random.Random(1).randbytes(4096), b"\x89PNG\r\n\x1a\n"],
    ids=["empty", "text", "random", "png-signature-only"],
)
def test_garbage_is_refused(data):
    with pytest.raises(MediaError):
        image_inspect(data, max_pixels=MAX_PIXELS)


def test_content_type_lists():
    assert "image/svg+xml" not in IMAGE_CONTENT_TYPES
    assert {"video/mp4", "video/webm"} <= set(VIDEO_CONTENT_TYPES)


# --- Videos ---------------------------------------------------------------------------------


def write_video(path: Path, codec: str, container_format: str | None = None) -> Path:
    """16 frames of 64x48 at 8 fps: a two-second clip."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(16):
            frame = av.VideoFrame(64, 48, "rgb24")
            frame.planes[0].update(bytes([index * 15]) * (64 * 48 * 3))
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture
def mp4(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4", "mpeg4")


@pytest.mark.parametrize(
    "name, codec, container_format, demuxer, extension",
    [
        ("clip.mp4", "mpeg4", None, "mov,mp4,m4a,3gp,3g2,mj2", "mp4"),
        ("clip.mp4", "libx264", None, "mov,mp4,m4a,3gp,3g2,mj2", "mp4"),
        ("clip.mov", "mpeg4", None, "mov,mp4,m4a,3gp,3g2,mj2", "mov"),
        ("clip.webm", "libvpx", None, "matroska,webm", "webm"),
        ("clip.mkv", "mpeg4", None, "matroska,webm", "mkv"),
        ("clip.bin", "mpeg4", "mp4", "mov,mp4,m4a,3gp,3g2,mj2", "mp4"),  # name is irrelevant
        ("clip.bin", "libvpx", "webm", "matroska,webm", "webm"),
    ],
)
def test_supported_videos(tmp_path, name, codec, container_format, demuxer, extension):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    path = write_video(tmp_path / name, codec, container_format)
    info = video_inspect(str(path))
    assert info == VideoInfo(demuxer, extension, info.duration, 64, 48)
    assert info.duration == pytest.approx(2.0, abs=0.2)


def test_video_pixel_limit(mp4):
    assert video_inspect(mp4, max_pixels=64 * 48).width == 64
    with pytest.raises(MediaError, match="too large"):
        video_inspect(mp4, max_pixels=64 * 48 - 1)


@pytest.fixture
def canary() -> Iterator[socket.socket]:
    """A local listener that FFmpeg must never connect to."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    yield sock
    with pytest.raises(BlockingIOError):  # nothing waiting to be accepted: never connected
        sock.accept()
    sock.close()


def hls_playlist(canary: socket.socket) -> bytes:
    port = canary.getsockname()[1]
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
        f"#EXTINF:2.0,\nhttp://127.0.0.1:{port}/segment.ts\n#EXT-X-ENDLIST\n"
    ).encode()


@pytest.mark.parametrize("name", ["playlist.m3u8", "playlist.mp4", "playlist.bin"])
def test_hls_playlist_is_refused(tmp_path, canary, name):
    path = tmp_path / name
    path.write_bytes(hls_playlist(canary))
    with pytest.raises(MediaError, match="Not a supported video format"):
        video_inspect(str(path))


def test_playlist_disguised_as_mp4_is_refused(tmp_path, canary):
    """Starts like an MP4 so it passes sniffing, but the forced MP4 demuxer cannot read it."""
    path = tmp_path / "disguised.mp4"
    path.write_bytes(b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom" + hls_playlist(canary))
    with pytest.raises(MediaError):
        video_inspect(str(path))


def test_concat_script_is_refused(tmp_path, mp4):
    path = tmp_path / "list.ffconcat"
    path.write_text(f"ffconcat version 1.0\nfile '{mp4}'\nfile '/etc/hostname'\n")
    with pytest.raises(MediaError, match="Not a supported video format"):
        video_inspect(str(path))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"just some text\n",
        b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 1 RTP/AVP 96\n",
        random.Random(2).randbytes(8192),
        b"\x1a\x45\xdf\xa3" + random.Random(3).randbytes(4096),  # Matroska magic, then noise
    ],
    ids=["empty", "text", "sdp", "random", "matroska-magic-noise"],
)
def test_non_videos_are_refused(tmp_path, content):
    path = tmp_path / "upload.bin"
    path.write_bytes(content)
    with pytest.raises(MediaError):
        video_inspect(str(path))


def test_truncated_video_is_refused(tmp_path, mp4):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(mp4.read_bytes()[:200])
    with pytest.raises(MediaError):
        video_inspect(str(path))


def test_audio_only_file_is_refused(tmp_path):
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
        frame.sample_rate = 8000
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(MediaError, match="no video stream"):
        video_inspect(str(path))
