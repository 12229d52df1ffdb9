"""Hard edits and hard negatives of the image quality set (issue 8): what people do to get a
blocked picture past a filter, and pairs that look alike without being copies.

Hard edits (HARD_TRANSFORMS, shaped like dataset.IMAGE_TRANSFORMS):
- crop-asym: each side cut by 2-10% independently; crop-10%: 10% off every side;
  crop+resize+jpeg: each side cut by 0-10%, scaled to 0.5-0.8 and saved at JPEG quality 60;
- border-uniform: a border of one colour, 3-12% of the size, the same or different per side;
- border-blurred: the picture shrunk onto a blurred enlarged copy of itself (the "blurred
  background" of reposting apps), often in another aspect ratio;
- letterbox: fitted into another aspect ratio (1:1, 16:9, 9:16, 4:5) with black or white bars;
- caption-top / caption-bottom: a solid band of 8-20% of the height with a line or two of
  text; the canvas grows, or (half the time) the result is scaled back to the original size;
- rotate-fill: turned by 1-5 degrees either way, the corners filled black or white;
  rotate-crop: the same, cropped to the largest upright rectangle without fill.
Hard negatives (pairs that must not match), taking turns:
- region: two windows of one large picture that overlap by at most ~10% of a window;
- shared-border / shared-caption / shared-letterbox: two unrelated pictures given the same
  border, caption band or letterbox canvas.

The edits draw from their own stream ("quality-hard"), the negatives from "quality-hardneg",
so adding them leaves every other item of the set as it was.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from audit import demo
from samples import fingerprints as fp
from samples.quality import dataset

CAPTION_WORDS = (
    "WHEN", "YOU", "FINALLY", "SEE", "THIS", "LOOK", "AT", "WHAT", "THEY", "DID", "SHARE",
    "BEFORE", "DELETED", "NOBODY", "TALKS", "ABOUT", "IT", "REAL", "TRUTH", "WOW", "OMG",
)  # fmt: skip
BAR_COLOURS = ((0, 0, 0), (255, 255, 255))
ASPECTS = (1.0, 16 / 9, 9 / 16, 4 / 5)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    # Mostly black or white, as apps make them; sometimes a colour.
    if rng.random() < 0.7:
        return rng.choice(BAR_COLOURS)
    return tuple(rng.randint(0, 255) for _ in range(3))


def _cropped(rng: random.Random, img: Image.Image, low: float, high: float) -> Image.Image:
    w, h = img.size
    left, right = rng.uniform(low, high), rng.uniform(low, high)
    top, bottom = rng.uniform(low, high), rng.uniform(low, high)
    return img.crop(
        (round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom)))
    )


def cropped_resized(rng: random.Random, img: Image.Image) -> Image.Image:
    img = _cropped(rng, img, 0.0, 0.10)
    return dataset._scaled(img, rng.uniform(0.5, 0.8))


def border_spec(rng: random.Random) -> dict:
    width = rng.uniform(0.03, 0.12)
    sides = [width] * 4 if rng.random() < 0.5 else [rng.uniform(0.03, 0.12) for _ in range(4)]
    return {"colour": _colour(rng), "sides": sides}


def bordered(img: Image.Image, spec: dict) -> Image.Image:
    w, h = img.size
    left, top, right, bottom = (
        round(share * (w if i % 2 == 0 else h)) for i, share in enumerate(spec["sides"])
    )
    canvas = Image.new("RGB", (w + left + right, h + top + bottom), spec["colour"])
    canvas.paste(img, (left, top))
    return canvas


def _canvas_size(rng: random.Random, img: Image.Image) -> tuple[int, int]:
    """Another aspect ratio than the picture's, about as large."""
    aspect = img.width / img.height
    choices = [a for a in ASPECTS if abs(math.log(a / aspect)) > 0.15] or [aspect * 1.5]
    target = rng.choice(choices)
    long = max(img.size)
    if target >= 1:
        return long, max(16, round(long / target))
    return max(16, round(long * target)), long


def _fit(img: Image.Image, size: tuple[int, int], share: float = 1.0) -> Image.Image:
    scale = share * min(size[0] / img.width, size[1] / img.height)
    fitted = (max(8, round(img.width * scale)), max(8, round(img.height * scale)))
    return img.resize(fitted, Image.Resampling.LANCZOS)


def _centred(back: Image.Image, front: Image.Image) -> Image.Image:
    back.paste(front, ((back.width - front.width) // 2, (back.height - front.height) // 2))
    return back


def blurred_border(rng: random.Random, img: Image.Image) -> Image.Image:
    size = _canvas_size(rng, img) if rng.random() < 0.7 else img.size
    # The background: the picture enlarged to cover the canvas, blurred heavily.
    cover = max(size[0] / img.width, size[1] / img.height)
    enlarged = (math.ceil(img.width * cover), math.ceil(img.height * cover))
    back = img.resize(enlarged, Image.Resampling.BILINEAR)
    x0, y0 = (back.width - size[0]) // 2, (back.height - size[1]) // 2
    back = back.crop((x0, y0, x0 + size[0], y0 + size[1]))
    back = back.filter(ImageFilter.GaussianBlur(max(size) / rng.uniform(15, 30)))
    share = rng.uniform(0.75, 0.92) if size == img.size else rng.uniform(0.85, 1.0)
    return _centred(back, _fit(img, size, share))


def letterbox_spec(rng: random.Random, img: Image.Image) -> dict:
    return {"size": _canvas_size(rng, img), "colour": rng.choice(BAR_COLOURS)}


def letterboxed(img: Image.Image, spec: dict) -> Image.Image:
    return _centred(Image.new("RGB", spec["size"], spec["colour"]), _fit(img, spec["size"]))


def caption_spec(rng: random.Random, where: str) -> dict:
    background = _colour(rng)
    ink = (0, 0, 0) if sum(background) > 380 else (255, 255, 255)
    lines = [
        " ".join(rng.choices(CAPTION_WORDS, k=rng.randint(2, 5))) for _ in range(rng.randint(1, 2))
    ]
    return {
        "where": where,
        "share": rng.uniform(0.08, 0.20),  # of the final height
        "background": background,
        "ink": ink,
        "lines": lines,
        "keep_size": rng.random() < 0.5,
    }


def captioned(img: Image.Image, spec: dict) -> Image.Image:
    w, h = img.size
    band = max(12, round(h * spec["share"] / (1 - spec["share"])))
    canvas = Image.new("RGB", (w, h + band), spec["background"])
    top = spec["where"] == "top"
    canvas.paste(img, (0, band if top else 0))
    draw = ImageDraw.Draw(canvas)
    lines = spec["lines"]
    size = max(8, int(band * 0.7 / len(lines)))
    y = (0 if top else h) + (band - size * len(lines)) // 2
    for line in lines:
        face = demo.fitting_font(draw, line, size, w * 9 // 10)
        draw.text(
            ((w - draw.textlength(line, font=face)) / 2, y), line, fill=spec["ink"], font=face
        )
        y += size
    if spec["keep_size"]:
        canvas = canvas.resize((w, h), Image.Resampling.LANCZOS)
    return canvas


def _angle(rng: random.Random) -> float:
    return rng.choice((-1, 1)) * rng.uniform(1.0, 5.0)


def rotated_fill(rng: random.Random, img: Image.Image) -> Image.Image:
    return img.rotate(_angle(rng), Image.Resampling.BICUBIC, fillcolor=rng.choice(BAR_COLOURS))


def rotated_crop(rng: random.Random, img: Image.Image) -> Image.Image:
    angle = _angle(rng)
    turned = img.rotate(angle, Image.Resampling.BICUBIC)
    # The largest centred upright rectangle of the picture's aspect inside the turned one.
    w, h = img.size
    cos, sin = math.cos(math.radians(abs(angle))), math.sin(math.radians(abs(angle)))
    scale = min(1 / (cos + (h / w) * sin), 1 / (cos + (w / h) * sin))
    cw, ch = w * scale, h * scale
    box = (
        round((w - cw) / 2) + 1,
        round((h - ch) / 2) + 1,
        round((w + cw) / 2) - 1,
        round((h + ch) / 2) - 1,
    )
    return turned.crop(box)


Change = Callable[[random.Random, Image.Image], Image.Image]
HARD_TRANSFORMS: dict[str, tuple[Change, str, int]] = {
    "crop-asym": (lambda rng, img: _cropped(rng, img, 0.02, 0.10), "JPEG", 85),
    "crop-10%": (lambda rng, img: _cropped(rng, img, 0.10, 0.10), "JPEG", 85),
    "crop+resize+jpeg": (cropped_resized, "JPEG", 60),
    "border-uniform": (lambda rng, img: bordered(img, border_spec(rng)), "JPEG", 85),
    "border-blurred": (blurred_border, "JPEG", 85),
    "letterbox": (lambda rng, img: letterboxed(img, letterbox_spec(rng, img)), "JPEG", 85),
    "caption-top": (lambda rng, img: captioned(img, caption_spec(rng, "top")), "JPEG", 85),
    "caption-bottom": (lambda rng, img: captioned(img, caption_spec(rng, "bottom")), "JPEG", 85),
    "rotate-fill": (rotated_fill, "JPEG", 85),
    "rotate-crop": (rotated_crop, "JPEG", 85),
}


def hard_copies(
    seed: int, number: int, kind: str, source: bytes
) -> list[tuple[str, str, str, bytes]]:
    """(name, kind, transform, file) of the hard copies of source `number`, whose file is
    `source` (from dataset.image_group)."""
    rng = demo.rng_for(seed, "quality-hard", number)
    shared = Image.open(io.BytesIO(source)).convert("RGB")
    items = []
    for name, (change, fmt, quality) in HARD_TRANSFORMS.items():
        copy = dataset.encode(change(rng, shared), fmt, quality)
        items.append((f"{number:04d}-{name}.{dataset.EXTENSIONS[fmt]}", kind, name, copy))
    return items


# --- Hard negatives -------------------------------------------------------------------------

HARD_NEGATIVES = ("region", "shared-border", "shared-caption", "shared-letterbox")
# Large pictures whose windows carry detail (demo's gradients give windows of PDQ quality < 10).
REGION_KINDS = ("photo", "landscape", "shapes", "meme", "noise")
# A window pair is drawn again when either window has a PDQ quality under PDQ_MIN_QUALITY or
# the two differ by less than this mean grey level at 32x32: a flat area of the picture gives
# two windows of (near-)identical pixels, a copy rather than a negative.
REGION_MIN_DIFFERENCE = 4.0
REGION_TRIES = 30


def _windows(rng: random.Random, big: Image.Image) -> tuple[Image.Image, Image.Image]:
    """Two windows of 40-50% of `big`'s width and height, side by side, one above the other or
    diagonal, overlapping by at most 10% of a window's width or height."""
    W, H = big.size
    ww, wh = round(W * rng.uniform(0.4, 0.5)), round(H * rng.uniform(0.4, 0.5))
    overlap = rng.uniform(0.0, 0.1)
    layout = rng.choice(("beside", "below", "diagonal"))
    x0, y0 = rng.randint(0, W - 2 * ww + round(overlap * ww)), rng.randint(0, H - wh)
    if layout == "beside":
        a = (x0, y0)
        b = (x0 + ww - round(overlap * ww), y0)
    else:
        y0 = rng.randint(0, H - 2 * wh + round(overlap * wh))
        a = (x0 if layout == "below" else rng.randint(0, W - ww), y0)
        b = (a[0] if layout == "below" else rng.randint(0, W - ww), y0 + wh - round(overlap * wh))
    return big.crop((*a, a[0] + ww, a[1] + wh)), big.crop((*b, b[0] + ww, b[1] + wh))


def region_acceptable(first: bytes, second: bytes) -> bool:
    """Whether two window files make a hard negative: both informative for PDQ, and not
    (nearly) the same pixels."""
    prints = [fp.image_fingerprint(data) for data in (first, second)]
    if min(p.quality for p in prints) < fp.PDQ_MIN_QUALITY:
        return False
    grey = [
        np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((32, 32)), dtype=np.float32)
        for data in (first, second)
    ]
    return float(np.abs(grey[0] - grey[1]).mean()) >= REGION_MIN_DIFFERENCE


def region_pair(rng: random.Random) -> tuple[str, bytes, bytes]:
    """(kind of picture, first window file, second): a new large picture every third try."""
    for attempt in range(REGION_TRIES):
        if attempt % 3 == 0:
            kind = rng.choice(REGION_KINDS)
            big = dataset.IMAGE_KINDS[kind][0](
                rng, rng.randint(1400, 2200), rng.randint(1200, 2000)
            )
        first, second = (dataset.encode(w, "JPEG", 90) for w in _windows(rng, big))
        if region_acceptable(first, second):
            return kind, first, second
    raise RuntimeError(f"no acceptable pair of windows in {REGION_TRIES} tries")


def hard_negative_files(seed: int, number: int) -> list[tuple[str, str, str, bytes]]:
    """(name, kind of picture, kind of negative, file) of hard negative pair `number`."""
    rng = demo.rng_for(seed, "quality-hardneg", number)
    what = HARD_NEGATIVES[number % len(HARD_NEGATIVES)]
    if what == "region":
        kind, first, second = region_pair(rng)
    else:
        # Two unrelated pictures from this stream, the same size, so the frame is the same too.
        kind, a = dataset.draw_source(rng, 100 + number)
        _, b = dataset.draw_source(rng, 100 + number)
        b = b.resize(a.size, Image.Resampling.LANCZOS)
        if what == "shared-border":
            spec = border_spec(rng)
            a, b = bordered(a, spec), bordered(b, spec)
        elif what == "shared-caption":
            spec = caption_spec(rng, rng.choice(("top", "bottom")))
            a, b = captioned(a, spec), captioned(b, spec)
        else:
            spec = letterbox_spec(rng, a)
            a, b = letterboxed(a, spec), letterboxed(b, spec)
        first, second = dataset.encode(a, "JPEG", 90), dataset.encode(b, "JPEG", 90)
    return [
        (f"hneg-{number:04d}-a.jpg", kind, what, first),
        (f"hneg-{number:04d}-b.jpg", kind, what, second),
    ]
