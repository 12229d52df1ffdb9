import pickle
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from samples import crophash
from samples import fingerprints as fp
from samples.quality import dataset, hard_edits


def small_of(img: Image.Image, fmt: str = "JPEG", quality: int = 85) -> Image.Image:
    """The picture as image_fingerprint sees it: saved, decoded and shrunk to HASH_SIZE."""
    data = dataset.encode(img, fmt, quality)
    return fp._image_shrink(fp._image_decode(data), fp.HASH_SIZE)


def codes_of(img: Image.Image, fmt: str = "JPEG", quality: int = 85):
    picture = crophash.crop_picture(small_of(img, fmt, quality))
    return picture, crophash.query_codes(picture), crophash.stored_codes(picture)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return dataset.draw_photo(random.Random(5), 640, 480)


@pytest.fixture(scope="module")
def source(photo):
    return codes_of(photo, "PNG")


def test_a_cropped_resized_recompressed_copy_is_found(photo, source):
    w, h = photo.size
    copy = photo.crop((round(w * 0.02), round(h * 0.09), round(w * 0.93), h - round(h * 0.04)))
    copy = copy.resize((copy.width * 6 // 10, copy.height * 6 // 10), Image.Resampling.LANCZOS)
    picture, query, _ = codes_of(copy)
    found = crophash.crop_match(picture, query, source[2])
    assert found and found.score >= crophash.CONFIRM_MIN and found.bits <= crophash.RADIUS
    assert found.form in source[2].forms and found.edit == "cropped"


@pytest.mark.parametrize(
    ("make", "edit"),
    [
        (lambda img: hard_edits.blurred_border(random.Random(2), img), "bordered"),
        (lambda img: hard_edits.captioned(img, _caption("top")), "captioned"),
        (
            lambda img: hard_edits.bordered(img, {"colour": (0, 0, 0), "sides": [0.08] * 4}),
            "bordered",
        ),
        (lambda img: img.rotate(4, Image.Resampling.BICUBIC, fillcolor=(255, 255, 255)), "turned"),
    ],
    ids=["blurred-border", "caption-top", "black-border", "turned-4"],
)
def test_a_bordered_captioned_or_turned_copy_is_found(photo, source, make, edit):
    picture, query, _ = codes_of(make(photo))
    found = crophash.crop_match(picture, query, source[2])
    assert found and found.edit == edit


def _caption(where: str) -> dict:
    return {
        "where": where,
        "share": 0.18,
        "background": (255, 255, 255),
        "ink": (0, 0, 0),
        "lines": ["WHEN YOU FINALLY SEE IT"],
        "keep_size": False,
    }


def _brighter(img: Image.Image, levels: int = 40) -> Image.Image:
    """The same picture lighter by `levels` in R, G and B: the same Cb and Cr, the same
    correlation."""
    return img.point(lambda v: min(255, v + levels))


def _avatar(background: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (480, 480), background)
    draw = ImageDraw.Draw(img)
    draw.ellipse((90, 90, 390, 390), fill="#e0ac69")
    for x in (190, 290):
        draw.ellipse((x - 15, 170, x + 15, 200), fill="#222222")
    draw.arc((165, 240, 315, 315), 20, 160, fill="#222222", width=6)
    return img


def _cropped(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.crop((round(w * 0.06), round(h * 0.04), round(w * 0.97), round(h * 0.92)))


@pytest.mark.parametrize(
    ("stored", "look_alike"),
    [
        (lambda photo: photo, lambda photo: _cropped(_brighter(photo))),
        (lambda _: _avatar((40, 60, 110)), lambda _: _cropped(_avatar((80, 100, 150)))),
    ],
    ids=["brighter-photo", "avatar-on-a-lighter-background"],
)
def test_a_look_alike_of_another_brightness_is_not_found(photo, stored, look_alike, monkeypatch):
    _, _, theirs = codes_of(stored(photo), "PNG")
    picture, query, _ = codes_of(look_alike(photo))
    assert crophash.crop_match(picture, query, theirs) is None
    # The grey levels alone tell it apart: correlation and colour pass.
    monkeypatch.setattr(crophash, "LUMA_MAX", float("inf"))
    assert crophash.crop_match(picture, query, theirs)


@pytest.mark.parametrize(
    "make",
    [
        lambda img: hard_edits.blurred_border(random.Random(2), img),
        lambda img: hard_edits.letterboxed(img, {"colour": (0, 0, 0), "size": (640, 640)}),
        lambda img: _cropped(img).resize((380, 300), Image.Resampling.LANCZOS),
    ],
    ids=["blurred-border", "letterbox", "crop-resize"],
)
def test_a_hard_copy_at_jpeg_60_keeps_its_grey_levels(photo, source, make):
    picture, query, _ = codes_of(make(photo), quality=60)
    assert crophash.crop_match(picture, query, source[2])


def test_another_region_of_the_same_picture_is_not_found():
    big = dataset.draw_photo(random.Random(8), 1600, 1200)
    left, right = big.crop((100, 300, 800, 900)), big.crop((760, 300, 1460, 900))
    a, b = codes_of(left), codes_of(right)
    assert crophash.crop_match(a[0], a[1], b[2]) is None
    assert crophash.crop_match(b[0], b[1], a[2]) is None
    assert crophash.crop_match(a[0], a[1], a[2])  # each is found against itself


@pytest.mark.parametrize("size", [(300, 200), (1, 1), (3, 200), (200, 7)])
def test_a_flat_or_tiny_picture_is_coded_without_error(size):
    blank = Image.new("RGB", size, (200, 30, 30))
    picture, query, stored = codes_of(blank, "PNG")
    assert stored.codes.dtype == np.uint64 and stored.colours.dtype == np.uint32
    assert len(stored.forms) == len(stored.codes) == len(stored.colours) >= 3
    assert len(query.codes) == len(query.colours) == len(query.rects) >= 9
    crophash.crop_match(picture, query, stored)  # may match itself or not, but does not fail


def test_codes_and_thumbnails_pack_and_unpack(source):
    picture, _, stored = source
    for code, colour in zip(stored.codes, stored.colours, strict=True):
        data = crophash.code_bytes(int(code), int(colour))
        assert len(data) == 12 and crophash.code_parts(data) == (int(code), int(colour))
    assert crophash.code_parts(crophash.code_bytes(2**63 - 1, 2**32 - 1)) == (2**63 - 1, 2**32 - 1)
    unpacked = crophash._thumbs_unpack(stored.thumbs)
    assert unpacked.size == (picture.grey.shape[1], picture.grey.shape[0])
    assert set(unpacked.regions) == {crophash._form_parts(f)[0] for f in stored.forms}
    assert (
        crophash._thumbs_pack(unpacked.size, unpacked.regions, unpacked.thumbs, unpacked.chroma)
        == stored.thumbs
    )
    assert all(len(form) <= 12 for form in stored.forms)


def test_confirm_rejects_a_wrong_candidate(photo, source):
    other = codes_of(dataset.draw_photo(random.Random(6), 640, 480))
    picture, query, stored = source
    hits = [(i, form, 0) for i in range(len(query.codes)) for form in stored.forms[:1]]
    assert crophash.confirm(picture, query, hits, stored.thumbs)  # the right one
    assert crophash.confirm(picture, query, hits, other[2].thumbs) is None


def test_the_dataclasses_compare_and_pickle_by_value(photo, source):
    for mine, theirs in zip(source, codes_of(photo, "PNG"), strict=True):
        assert mine == theirs and hash(mine) == hash(theirs)
        assert pickle.loads(pickle.dumps(mine)) == mine  # noqa: S301 (our own bytes)
    assert source[1] != source[2]
