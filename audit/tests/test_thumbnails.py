import io
import struct
import threading
import zlib

import av
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from audit import thumbnails
from audit.tests.factories import ResultFactory, image_bytes

pytestmark = pytest.mark.django_db

GREY_STEP = 8  # frame i of a test video is grey level i * GREY_STEP


def stored(name: str, data: bytes) -> str:
    return default_storage.save(name, ContentFile(data))


def image_result(data: bytes, name: str = "results/a.jpg", **extra):
    return ResultFactory(media_type="image", file=stored(name, data), **extra)


def video_result(data: bytes, duration: float | None = 3.0, **extra):
    return ResultFactory(
        media_type="video", file=stored("results/v.mp4", data), duration=duration, **extra
    )


def video_bytes(frames: int = 30, rate: int = 10, rotation: int = 0) -> bytes:
    """An MP4 whose frame i is a flat grey of level i * GREY_STEP, a keyframe every second."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = rate
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            pixels = np.full((48, 64, 3), i * GREY_STEP, "uint8")
            if rotation:
                pixels[:, :32] = (255, 0, 0)  # the left half red, to see where it ends up
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def opened(name: str) -> Image.Image:
    with default_storage.open(name, "rb") as file:
        image = Image.open(file)
        image.load()
    return image


def frame_index(name: str) -> float:
    """Which frame of video_bytes() a thumbnail shows, from its grey level."""
    return np.asarray(opened(name).convert("L")).mean() / GREY_STEP


def thumb_files(media_root) -> list:
    return sorted((media_root / "thumbs").rglob("*.jpg"))


# --- Images ---------------------------------------------------------------------------------


def test_thumbnail_is_a_jpeg_with_the_longest_side_given():
    result = image_result(image_bytes((1200, 900)))
    image = opened(thumbnails.thumbnail_name(result, size=320))
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (320, 240))


def test_thumbnail_of_a_small_image_is_not_enlarged():
    image = opened(thumbnails.thumbnail_name(image_result(image_bytes((64, 48)))))
    assert image.size == (64, 48)


def test_thumbnail_is_made_once(media_root):
    result = image_result(image_bytes((800, 600)))
    name = thumbnails.thumbnail_name(result)
    first = (media_root / name).stat()
    assert thumbnails.thumbnail_name(result) == name
    again = (media_root / name).stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    assert len(thumb_files(media_root)) == 1


def test_results_sharing_a_file_share_one_thumbnail(media_root):
    name = stored("demo/1/img/003-b.jpg", image_bytes((400, 300)))
    first, second = ResultFactory.create_batch(2, media_type="image", file=name)
    assert thumbnails.thumbnail_name(first) == thumbnails.thumbnail_name(second)
    assert len(thumb_files(media_root)) == 1


def test_each_size_has_its_own_thumbnail(media_root):
    result = image_result(image_bytes((800, 600)))
    assert opened(thumbnails.thumbnail_name(result, size=100)).size == (100, 75)
    assert opened(thumbnails.thumbnail_name(result, size=200)).size == (200, 150)
    assert len(thumb_files(media_root)) == 2


def test_a_rewritten_source_gets_a_new_thumbnail(media_root):
    result = image_result(image_bytes((80, 60), color=(255, 0, 0)), name="demo/1/img/a.jpg")
    before = thumbnails.thumbnail_name(result)
    path = media_root / result.file.name
    path.write_bytes(image_bytes((80, 60), color=(0, 0, 255)))
    after = thumbnails.thumbnail_name(result)
    assert after != before
    assert opened(after).getpixel((40, 30))[2] > 200


def test_transparent_palette_png_is_composited_on_white():
    image = Image.new("P", (40, 40), 1)
    image.putpalette([0, 0, 0, 200, 0, 0])  # 0: black, but transparent; 1: red
    image.paste(0, (0, 0, 20, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    thumb = opened(thumbnails.thumbnail_name(image_result(buffer.getvalue(), "results/p.png")))
    assert thumb.mode == "RGB"
    assert min(thumb.getpixel((5, 20))) > 240  # transparent: white, not black
    red, green, _ = thumb.getpixel((35, 20))
    assert red > 180 and green < 40


def test_semi_transparent_rgba_png_is_composited_on_white():
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(buffer, "PNG")
    thumb = opened(thumbnails.thumbnail_name(image_result(buffer.getvalue(), "results/t.png")))
    assert thumb.mode == "RGB"
    assert min(thumb.getpixel((20, 20))) > 240


def test_sixteen_bit_greyscale_png_is_not_clipped_to_white():
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 40), 128 * 256, "uint16")).save(buffer, "PNG")
    thumb = opened(thumbnails.thumbnail_name(image_result(buffer.getvalue(), "results/g.png")))
    assert 120 < thumb.getpixel((20, 20))[0] < 136


def test_exif_orientation_is_honoured():
    image = Image.new("RGB", (600, 300), (255, 0, 0))
    image.paste((0, 0, 255), (300, 0, 600, 300))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the left half goes to the top
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    thumb = opened(thumbnails.thumbnail_name(image_result(buffer.getvalue()), size=100))
    assert thumb.size == (50, 100)
    assert thumb.getpixel((25, 10))[0] > 200  # red at the top
    assert thumb.getpixel((25, 90))[2] > 200  # blue at the bottom


def test_an_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (40, 40), color) for color in ((0, 200, 0), (200, 0, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    thumb = opened(thumbnails.thumbnail_name(image_result(buffer.getvalue(), "results/a.gif")))
    assert thumb.getpixel((20, 20))[1] > 150


def test_an_image_over_the_pixel_limit_gets_none(settings, media_root):
    settings.RESULTS_MAX_IMAGE_PIXELS = 1000
    assert thumbnails.thumbnail_name(image_result(image_bytes((64, 48)))) is None
    assert not (media_root / "thumbs").exists()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size, with a few bytes of data: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_decompression_bomb_gets_none():
    result = image_result(png_claiming(100_000, 100_000), "results/bomb.png")
    assert thumbnails.thumbnail_name(result) is None


@pytest.mark.parametrize(
    "data",
    [
        image_bytes((400, 300))[:600],  # truncated
        b"\xff\xd8\xff\xe0 not really a jpeg",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
    ids=["truncated", "garbage", "svg"],
)
def test_a_corrupt_or_unsupported_file_gets_none(data, media_root):
    assert thumbnails.thumbnail_name(image_result(data)) is None
    assert thumb_files(media_root) == []


def test_a_format_outside_the_allow_list_gets_none():
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40)).save(buffer, "TIFF")
    assert thumbnails.thumbnail_name(image_result(buffer.getvalue(), "results/a.tif")) is None


def test_no_file_gets_none():
    assert thumbnails.thumbnail_name(ResultFactory(media_type="image", file="")) is None
    missing = ResultFactory(media_type="image", file="results/gone.jpg")
    assert thumbnails.thumbnail_name(missing) is None
    outside = ResultFactory(media_type="image", file="../../etc/passwd")
    assert thumbnails.thumbnail_name(outside) is None


def test_a_text_or_video_result_has_no_image_thumbnail():
    assert thumbnails.thumbnail_name(ResultFactory()) is None
    assert thumbnails.thumbnail_name(video_result(video_bytes(frames=5))) is None


def test_concurrent_requests_make_one_whole_thumbnail(media_root):
    result = image_result(image_bytes((2000, 1500)))
    names, errors = [], []

    def make():
        try:
            names.append(thumbnails.thumbnail_name(result))
        except Exception as exc:  # a failure must show in the assertion, not in a thread
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(names)) == 1 and None not in names
    assert opened(names[0]).size == (320, 240)
    files = [p for p in (media_root / "thumbs").rglob("*") if p.is_file()]
    assert files == thumb_files(media_root) and len(files) == 1  # no temporary files left


# --- Videos ---------------------------------------------------------------------------------


def test_poster_is_an_early_frame_of_the_video():
    name = thumbnails.poster_name(video_result(video_bytes(), duration=3.0))
    image = opened(name)
    assert (image.format, image.size) == ("JPEG", (64, 48))
    assert frame_index(name) == pytest.approx(3, abs=0.5)  # 10% of 3 s at 10 fps


def test_poster_without_a_known_duration_is_the_first_frame():
    name = thumbnails.poster_name(video_result(video_bytes(), duration=None))
    assert frame_index(name) == pytest.approx(0, abs=0.5)


@pytest.mark.parametrize("offset, index", [(0, 0), (0.9, 9), (1.0, 10), (2.5, 25), (1.64, 16)])
def test_frame_is_the_one_nearest_the_offset(offset, index):
    result = video_result(video_bytes())
    assert frame_index(thumbnails.frame_name(result, offset)) == pytest.approx(index, abs=0.5)


def test_frame_past_the_end_is_the_last_frame():
    result = video_result(video_bytes(), duration=5.0)  # longer than the 3 s really there
    assert frame_index(thumbnails.frame_name(result, 4.0)) == pytest.approx(29, abs=0.5)


def test_offsets_are_clamped_to_the_duration(media_root):
    result = video_result(video_bytes())
    assert thumbnails.frame_name(result, 100) == thumbnails.frame_name(result, 3.0)
    assert len(thumb_files(media_root)) == 1


@pytest.mark.parametrize("offset", [-1.0, float("nan"), float("inf")])
def test_negative_or_not_finite_offsets_get_none(offset):
    assert thumbnails.frame_name(video_result(video_bytes(frames=5)), offset) is None


def test_frame_is_made_once_per_offset(media_root):
    result = video_result(video_bytes())
    name = thumbnails.frame_name(result, 1.0)
    mtime = (media_root / name).stat().st_mtime_ns
    assert thumbnails.frame_name(result, 1.0004) == name  # the same millisecond
    assert (media_root / name).stat().st_mtime_ns == mtime
    assert thumbnails.frame_name(result, 2.0) != name
    assert len(thumb_files(media_root)) == 2


def test_frame_decodes_from_the_keyframe_before_the_offset_not_from_the_start(monkeypatch):
    # A keyframe every second: 2.5 s is 6 frames after the one at 2 s, but 26 from the start.
    monkeypatch.setattr(thumbnails, "MAX_FRAMES_DECODED", 8)
    result = video_result(video_bytes())
    assert frame_index(thumbnails.frame_name(result, 2.5)) == pytest.approx(25, abs=0.5)


def test_a_rotated_video_gives_an_upright_frame():
    result = video_result(video_bytes(frames=5, rotation=90))
    image = opened(thumbnails.poster_name(result))
    assert image.size == (48, 64)  # counter-clockwise: the left half ends at the bottom
    assert image.getpixel((24, 60))[0] > 200
    assert image.getpixel((24, 4))[0] < 60


def test_a_video_over_the_pixel_limit_gets_none(settings):
    settings.RESULTS_MAX_IMAGE_PIXELS = 1000
    assert thumbnails.poster_name(video_result(video_bytes(frames=5))) is None


@pytest.mark.parametrize(
    "data",
    [video_bytes()[:2000], b"\x00\x00\x00\x18ftypmp42 and then nothing", b"#EXTM3U\nfile:///etc"],
    ids=["truncated", "header-only", "playlist"],
)
def test_a_corrupt_or_unsupported_video_gets_none(data, media_root):
    result = video_result(data)
    assert thumbnails.poster_name(result) is None
    assert thumbnails.frame_name(result, 1.0) is None
    assert not (media_root / "thumbs").exists() or thumb_files(media_root) == []


def test_a_video_without_a_file_or_an_image_result_gets_none():
    assert thumbnails.poster_name(ResultFactory(media_type="video", file="")) is None
    assert thumbnails.frame_name(image_result(image_bytes()), 0) is None
