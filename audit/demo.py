"""Generators of demo content for `manage.py seed_demo`: images, videos, texts and the
machine results an Alibaba Content Moderation v1 client would have received for them.

Everything here is pure (no database, no storage) and deterministic: each item is drawn
from its own `random.Random`, seeded from the run seed and the item's number, so item 7
is the same picture whatever the pool size. Some originals come with near-duplicate
variants (resized, recompressed, lightly edited) that share the original's `group`, so
near-duplicate matching (PDQ for images, MinHash for texts) has something to find.
"""

from __future__ import annotations

import functools
import io
import random
from dataclasses import dataclass, field
from fractions import Fraction

import av
from PIL import Image, ImageColor, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from audit.models import SUGGESTION_SEVERITY

PASS, REVIEW, BLOCK = "pass", "review", "block"
NORMAL = "normal"

IMAGE_SCENES = ("porn", "terrorism", "ad")
VIDEO_SCENES = ("porn", "terrorism", "ad")
TEXT_SCENE = "antispam"

# Risky labels per scene, as the v1 API names them.
SCENE_LABELS = {
    "porn": ("sexy", "porn"),
    "terrorism": (
        "bloody",
        "explosion",
        "outfit",
        "logo",
        "weapon",
        "politics",
        "violence",
        "crowd",
        "parade",
        "carcrash",
        "flag",
    ),
    "ad": (
        "ad",
        "politics",
        "porn",
        "abuse",
        "terrorism",
        "contraband",
        "spam",
        "npx",
        "qrcode",
        "programCode",
    ),
}


def rng_for(seed: int, kind: str, number: int) -> random.Random:
    # A string seed is hashed with SHA-512, so it is stable across runs and Python versions.
    return random.Random(f"{seed}:{kind}:{number}")


@functools.cache
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size)


def fitting_font(
    draw: ImageDraw.ImageDraw, text: str, size: int, width: int
) -> ImageFont.FreeTypeFont:
    """The default font at `size`, or smaller so `text` fits in `width` pixels."""
    face = font(size)
    length = draw.textlength(text, font=face)
    if length > width:
        face = font(max(8, int(size * width / length)))
    return face


# --- Verdicts ---------------------------------------------------------------------------


def suggestion_for(label: str, rate: float) -> str:
    """The suggestion the service gives for a label at a confidence `rate` (0-100)."""
    if label == NORMAL:
        return PASS
    if rate >= 90:
        return BLOCK
    if rate >= 60:
        return REVIEW
    return PASS


def rate_for(rng: random.Random, suggestion: str, label: str) -> float:
    """A confidence that yields `suggestion` for `label` under `suggestion_for`."""
    if label == NORMAL:
        low, high = 70.0, 99.99
    elif suggestion == BLOCK:
        low, high = 90.0, 99.99
    elif suggestion == REVIEW:
        low, high = 60.0, 89.99
    else:
        raise ValueError("a risky label never passes in demo results")
    return round(rng.uniform(low, high), 2)


def scene_result(rng: random.Random, scene: str, label: str, suggestion: str) -> dict:
    return {
        "scene": scene,
        "label": label,
        "suggestion": suggestion,
        "rate": rate_for(rng, suggestion, label),
    }


def worst_verdict(scene_results: list[dict]) -> tuple[str, str]:
    """(suggestion, label) of a result: the worst suggestion over its scenes, and the label
    of the most confident scene among those with that suggestion."""
    if not scene_results:
        return PASS, NORMAL
    worst = max(
        scene_results, key=lambda r: (SUGGESTION_SEVERITY[r["suggestion"]], r.get("rate", 0))
    )
    return worst["suggestion"], worst["label"]


# --- Images -----------------------------------------------------------------------------

PALETTE = (
    "#e63946",
    "#f1faee",
    "#a8dadc",
    "#457b9d",
    "#1d3557",
    "#ffb703",
    "#fb8500",
    "#8ecae6",
    "#219ebc",
    "#023047",
    "#2a9d8f",
    "#e9c46a",
    "#f4a261",
    "#264653",
    "#6a4c93",
    "#ff99c8",
    "#c9f2c7",
    "#52b788",
)
FAKE_DOMAINS = ("cheap-deals.example", "win-big.example", "bestprice.example", "lucky888.example")


def random_color(rng: random.Random) -> str:
    return rng.choice(PALETTE)


def random_box(rng: random.Random, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0 = rng.randrange(w), rng.randrange(h)
    return (x0, y0, x0 + rng.randint(w // 10, w // 2), y0 + rng.randint(h // 10, h // 2))


def draw_shapes(rng: random.Random, w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), random_color(rng))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(5, 15)):
        shape = rng.choice(("rect", "ellipse", "polygon", "line"))
        box = random_box(rng, w, h)
        if shape == "rect":
            draw.rectangle(box, fill=random_color(rng))
        elif shape == "ellipse":
            draw.ellipse(box, fill=random_color(rng), outline=random_color(rng), width=3)
        elif shape == "polygon":
            points = [(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randint(3, 6))]
            draw.polygon(points, fill=random_color(rng))
        else:
            draw.line(box, fill=random_color(rng), width=rng.randint(2, 9))
    return img


def draw_gradient(rng: random.Random, w: int, h: int) -> Image.Image:
    base = Image.radial_gradient("L") if rng.random() < 0.4 else Image.linear_gradient("L")
    base = base.rotate(rng.choice((0, 90, 180, 270))).resize((w, h))
    img = ImageOps.colorize(base, random_color(rng), random_color(rng))
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for _ in range(rng.randint(2, 6)):
        r, g, b = ImageColor.getrgb(random_color(rng))
        draw.ellipse(random_box(rng, w, h), fill=(r, g, b, rng.randint(60, 140)))
    return Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB")


def draw_noise(rng: random.Random, w: int, h: int) -> Image.Image:
    # Coarse noise blown up: cheap, and a texture rather than TV static.
    small_size = (max(1, w // 12), max(1, h // 12))
    small = Image.frombytes("RGB", small_size, rng.randbytes(small_size[0] * small_size[1] * 3))
    img = small.resize((w, h), Image.Resampling.BICUBIC)
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(3, 8)))


def draw_landscape(rng: random.Random, w: int, h: int) -> Image.Image:
    sky = ImageOps.colorize(
        Image.linear_gradient("L").resize((w, h)), rng.choice(("#8ecae6", "#ffb4a2")), "#ffffff"
    )
    draw = ImageDraw.Draw(sky)
    sun_r = rng.randint(h // 14, h // 7)
    sx, sy = rng.randint(sun_r, w - sun_r), rng.randint(sun_r, h // 3)
    draw.ellipse((sx - sun_r, sy - sun_r, sx + sun_r, sy + sun_r), fill="#ffd166")
    for layer, color in enumerate(("#6d597a", "#355070", "#2a9d8f")):
        base_y = h // 2 + layer * h // 10
        points = [(0, h)]
        for x in range(0, w + w // 6, w // 6):
            points.append((x, base_y - rng.randint(0, h // 4)))
        points.append((w, h))
        draw.polygon(points, fill=color)
    draw.rectangle((0, h * 4 // 5, w, h), fill="#52b788")
    house_x, house_w = rng.randint(0, w * 2 // 3), w // 6
    ground = h * 4 // 5
    draw.rectangle((house_x, ground - house_w, house_x + house_w, ground), fill="#e9c46a")
    draw.polygon(
        [
            (house_x - 6, ground - house_w),
            (house_x + house_w // 2, ground - house_w * 3 // 2),
            (house_x + house_w + 6, ground - house_w),
        ],
        fill="#9d0208",
    )
    return sky


def draw_avatar(rng: random.Random, w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), random_color(rng))
    draw = ImageDraw.Draw(img)
    cx, cy, r = w // 2, h // 2, min(w, h) * 2 // 5
    draw.ellipse(
        (cx - r, cy - r, cx + r, cy + r), fill=rng.choice(("#f1c27d", "#e0ac69", "#8d5524"))
    )
    eye_dx, eye_y, eye_r = r // 3, cy - r // 4, max(2, r // 10)
    for ex in (cx - eye_dx, cx + eye_dx):
        draw.ellipse((ex - eye_r, eye_y - eye_r, ex + eye_r, eye_y + eye_r), fill="#222222")
    draw.arc((cx - r // 2, cy, cx + r // 2, cy + r // 2), 20, 160, fill="#222222", width=3)
    if rng.random() < 0.5:  # a hat, so avatars differ more than by skin tone
        draw.rectangle((cx - r, cy - r - r // 4, cx + r, cy - r + r // 6), fill=random_color(rng))
    return img


def fake_phone(rng: random.Random) -> str:
    # 555-01xx numbers are reserved for fiction.
    return f"+1 555-01{rng.randint(0, 99):02d}"


def fake_url(rng: random.Random) -> str:
    return f"www.{rng.choice(FAKE_DOMAINS)}/{rng.choice(('sale', 'win', 'vip', 'go'))}"


def draw_ad(rng: random.Random, w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), rng.choice(("#ffb703", "#e63946", "#219ebc", "#6a4c93")))
    draw = ImageDraw.Draw(img)
    draw.rectangle((8, 8, w - 8, h - 8), outline="#ffffff", width=4)
    headline = rng.choice(("MEGA SALE", "70% OFF", "FREE GIFT", "WIN $1000", "HOT DEALS"))
    lines = [
        (headline, h // 6, "#ffffff"),
        (rng.choice(("Limited time only!", "Today only!!!", "Act now!")), h // 14, "#fff3b0"),
        (f"Call {fake_phone(rng)}", h // 12, "#ffffff"),
        (fake_url(rng), h // 14, "#1d3557"),
    ]
    if rng.random() < 0.4:
        lines.append((f"Add WeChat: deals{rng.randint(100, 999)}", h // 14, "#ffffff"))
    y = h // 10
    for text, size, color in lines:
        face = fitting_font(draw, text, max(10, size), w - w // 6)
        draw.text((w // 12, y), text, fill=color, font=face)
        y += int(face.size * 1.5)
    return img


def draw_qrcode(rng: random.Random, w: int, h: int) -> Image.Image:
    """A QR-like pattern: random modules with the three finder squares. Not decodable."""
    side = min(w, h)
    modules = 25
    cell = max(2, side * 4 // 5 // modules)
    img = Image.new("RGB", (w, h), "#ffffff")
    draw = ImageDraw.Draw(img)
    x0, y0 = (w - cell * modules) // 2, (h - cell * modules) // 2

    def module(col: int, row: int) -> None:
        x, y = x0 + col * cell, y0 + row * cell
        draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill="#000000")

    def in_finder(col: int, row: int) -> bool:
        return (
            (col < 8 and row < 8)
            or (col >= modules - 8 and row < 8)
            or (col < 8 and row >= modules - 8)
        )

    for row in range(modules):
        for col in range(modules):
            if not in_finder(col, row) and rng.random() < 0.5:
                module(col, row)
    for fc, fr in ((0, 0), (modules - 7, 0), (0, modules - 7)):
        for row in range(7):
            for col in range(7):
                ring = max(abs(row - 3), abs(col - 3))
                if ring != 2:
                    module(fc + col, fr + row)
    if h - (y0 + cell * modules) > 20:
        draw.text((x0, y0 + cell * modules + 4), "Scan to win!", fill="#e63946", font=font(16))
    return img


CODE_LINES = (
    "def main():",
    "    data = load('input.csv')",
    "    for row in data:",
    "        if row.score > 0.9:",
    "            send(row)",
    "import os, sys",
    "while True: spam()",
    "print('hello world')",
    "x = [i * i for i in range(10)]",
    "return None",
)


def draw_code(rng: random.Random, w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), "#1e1e1e")
    draw = ImageDraw.Draw(img)
    size = max(10, h // 22)
    y = 8
    while y < h - size:
        color = rng.choice(("#d4d4d4", "#569cd6", "#ce9178", "#6a9955", "#dcdcaa"))
        draw.text((10, y), rng.choice(CODE_LINES), fill=color, font=font(size))
        y += int(size * 1.4)
    return img


IMAGE_KINDS = {
    "ad": draw_ad,
    "landscape": draw_landscape,
    "qrcode": draw_qrcode,
    "avatar": draw_avatar,
    "shapes": draw_shapes,
    "gradient": draw_gradient,
    "code": draw_code,
    "noise": draw_noise,
}
# What a detector "sees" in each kind when it flags one: (scene, label) candidates.
IMAGE_RISKS = {
    "shapes": (("porn", "sexy"), ("terrorism", "flag"), ("terrorism", "logo")),
    "gradient": (("porn", "sexy"), ("terrorism", "bloody")),
    "noise": (("porn", "porn"), ("porn", "sexy"), ("terrorism", "explosion")),
    "landscape": (
        ("terrorism", "explosion"),
        ("terrorism", "crowd"),
        ("terrorism", "carcrash"),
        ("terrorism", "parade"),
    ),
    "avatar": (("porn", "sexy"), ("porn", "porn"), ("terrorism", "outfit")),
    "ad": (("ad", "ad"), ("ad", "npx"), ("ad", "spam"), ("ad", "contraband")),
    "qrcode": (("ad", "qrcode"),),
    "code": (("ad", "programCode"),),
}
LOSSLESS_KINDS = {"qrcode", "code"}  # screenshots, so PNG like the real thing


@dataclass(frozen=True)
class DemoImage:
    key: str  # file stem, e.g. "003-b"
    group: str  # the original's key; near-duplicates share it
    variant: str  # "original" or how the copy was made
    kind: str
    data: bytes
    format: str  # Pillow's name: "JPEG" or "PNG"
    width: int
    height: int

    @property
    def extension(self) -> str:
        return "png" if self.format == "PNG" else "jpg"


def encode_image(img: Image.Image, fmt: str, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, "PNG", optimize=False)
    else:
        img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def draw_image(rng: random.Random, kind: str) -> Image.Image:
    w, h = rng.randint(256, 640), rng.randint(256, 640)
    return IMAGE_KINDS[kind](rng, w, h)


# Near-duplicate edits: each keeps the picture recognisably the same.
def resized(rng: random.Random, img: Image.Image) -> Image.Image:
    scale = rng.uniform(0.5, 0.8)
    size = (max(64, int(img.width * scale)), max(64, int(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def retoned(rng: random.Random, img: Image.Image) -> Image.Image:
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    return ImageEnhance.Contrast(img).enhance(rng.uniform(0.85, 1.15))


def captioned(rng: random.Random, img: Image.Image) -> Image.Image:
    img = img.copy()
    draw = ImageDraw.Draw(img)
    tag = f"@user{rng.randint(100, 9999)}"
    draw.text(
        (6, img.height - 22),
        tag,
        fill="#ffffff",
        font=font(14),
        stroke_width=1,
        stroke_fill="#000000",
    )
    return img


def cropped(rng: random.Random, img: Image.Image) -> Image.Image:
    dx = max(1, int(img.width * rng.uniform(0.01, 0.02)))
    dy = max(1, int(img.height * rng.uniform(0.01, 0.02)))
    return img.crop((dx, dy, img.width - dx, img.height - dy))


IMAGE_EDITS = {"resized": resized, "retoned": retoned, "captioned": captioned, "cropped": cropped}


def make_image_group(seed: int, number: int, variants: int) -> list[DemoImage]:
    """Original number `number` and up to `variants` near-duplicates of it."""
    rng = rng_for(seed, "img", number)
    kinds = tuple(IMAGE_KINDS)
    # The first originals go through every kind, so even a small pool has each.
    kind = kinds[number] if number < len(kinds) else rng.choice(kinds)
    img = draw_image(rng, kind)
    fmt = "PNG" if kind in LOSSLESS_KINDS else "JPEG"
    group = f"{number:03d}"
    items = [DemoImage(group, group, "original", kind, encode_image(img, fmt), fmt, *img.size)]
    # Recompression at another quality is a variant too, so there are five kinds of copy.
    edits = rng.sample((*IMAGE_EDITS, "recompressed"), k=min(variants, len(IMAGE_EDITS) + 1))
    for index, edit in enumerate(edits):
        if edit == "recompressed":
            copy, quality = img, rng.randint(30, 60)
        else:
            copy, quality = IMAGE_EDITS[edit](rng, img), rng.randint(70, 92)
        data = encode_image(copy, "JPEG", quality)
        key = f"{group}-{chr(ord('b') + index)}"
        items.append(DemoImage(key, group, edit, kind, data, "JPEG", *copy.size))
    return items


def make_images(seed: int, originals: int, max_total: int | None = None) -> list[DemoImage]:
    """`originals` pictures; half of them get 1-3 near-duplicates, within `max_total` files."""
    images: list[DemoImage] = []
    for number in range(originals):
        # Every other original has copies, so even a tiny pool has near-duplicates.
        variants = rng_for(seed, "img-variants", number).randint(1, 3) if number % 2 == 0 else 0
        room = (max_total - len(images) - (originals - number)) if max_total else variants
        images.extend(make_image_group(seed, number, max(0, min(variants, room))))
    return images


def image_results(rng: random.Random, image: DemoImage, suggestion: str) -> list[dict]:
    results = {scene: scene_result(rng, scene, NORMAL, PASS) for scene in IMAGE_SCENES}
    if suggestion != PASS:
        scene, label = rng.choice(IMAGE_RISKS[image.kind])
        results[scene] = scene_result(rng, scene, label, suggestion)
        # Now and then a second scene is unsure too, so the worst-scene rule matters.
        if rng.random() < 0.15:
            other = rng.choice([s for s in IMAGE_SCENES if s != scene])
            results[other] = scene_result(rng, other, rng.choice(SCENE_LABELS[other]), REVIEW)
    return [results[scene] for scene in IMAGE_SCENES]


# --- Videos -----------------------------------------------------------------------------

VIDEO_FPS = 10


def video_codec() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


@dataclass(frozen=True)
class Sprite:
    shape: str
    color: str
    size: int
    x: float
    y: float
    dx: float  # pixels per frame, at 320x240
    dy: float


@dataclass(frozen=True)
class ClipSpec:
    background: str
    sprites: tuple[Sprite, ...]
    frames: int
    caption: str


@dataclass(frozen=True)
class DemoVideo:
    key: str
    group: str
    variant: str
    data: bytes
    format: str  # container: "mp4"
    width: int
    height: int
    duration: float
    fps: int = VIDEO_FPS
    risk: tuple[str, str] = field(default=("porn", "sexy"))


VIDEO_RISKS = (
    ("porn", "sexy"),
    ("porn", "porn"),
    ("terrorism", "violence"),
    ("terrorism", "weapon"),
    ("terrorism", "crowd"),
    ("ad", "ad"),
    ("ad", "qrcode"),
)


def make_clip_spec(rng: random.Random) -> ClipSpec:
    sprites = tuple(
        Sprite(
            shape=rng.choice(("rect", "ellipse", "triangle")),
            color=random_color(rng),
            size=rng.randint(20, 60),
            x=rng.uniform(0, 280),
            y=rng.uniform(0, 200),
            dx=rng.uniform(-12, 12),
            dy=rng.uniform(-9, 9),
        )
        for _ in range(rng.randint(2, 5))
    )
    caption = rng.choice(("", "LIVE", "Follow me!", "BIG GIVEAWAY", f"call {fake_phone(rng)}"))
    return ClipSpec(random_color(rng), sprites, rng.randint(1, 3) * VIDEO_FPS, caption)


def bounce(position: float, limit: float) -> float:
    # Reflect at the borders so shapes stay in view however long the clip.
    period = 2 * limit
    position %= period
    return period - position if position > limit else position


def render_frame(spec: ClipSpec, index: int, size: tuple[int, int]) -> Image.Image:
    w, h = size
    sx, sy = w / 320, h / 240
    img = Image.new("RGB", size, spec.background)
    draw = ImageDraw.Draw(img)
    for sprite in spec.sprites:
        x = bounce(sprite.x + sprite.dx * index, 320 - sprite.size) * sx
        y = bounce(sprite.y + sprite.dy * index, 240 - sprite.size) * sy
        box = (x, y, x + sprite.size * sx, y + sprite.size * sy)
        if sprite.shape == "rect":
            draw.rectangle(box, fill=sprite.color)
        elif sprite.shape == "ellipse":
            draw.ellipse(box, fill=sprite.color)
        else:
            draw.polygon(
                [(box[0], box[3]), ((box[0] + box[2]) / 2, box[1]), (box[2], box[3])],
                fill=sprite.color,
            )
    if spec.caption:
        draw.text((6 * sx, 6 * sy), spec.caption, fill="#ffffff", font=font(max(10, int(18 * sy))))
    return img


def encode_clip(frames: list[Image.Image], codec: str, quality: int, fps: int = VIDEO_FPS) -> bytes:
    """Frames to an mp4. `quality` is 0 (worst) to 100 (best)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        if codec == "libx264":
            crf = str(round(40 - quality * 0.25))  # 100 -> 15, 0 -> 40
            stream.options = {"crf": crf, "preset": "ultrafast", "tune": "zerolatency"}
        else:
            stream.bit_rate = int(60_000 + quality * 6_000)
        for index, img in enumerate(frames):
            frame = av.VideoFrame.from_image(img)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


# Re-encodes: (variant, size, quality, brightness).
VIDEO_REENCODES = (
    ("lowq", (320, 240), 15, 1.0),
    ("small", (160, 120), 60, 1.0),
    ("brighter", (320, 240), 55, 1.12),
)


def make_video_group(seed: int, number: int, reencodes: int) -> list[DemoVideo]:
    rng = rng_for(seed, "vid", number)
    spec = make_clip_spec(rng)
    risk = rng.choice(VIDEO_RISKS)
    codec = video_codec()
    size = rng.choice(((320, 240), (160, 120)))
    group = f"{number:03d}"
    duration = spec.frames / VIDEO_FPS

    def clip(
        key: str, variant: str, size: tuple[int, int], quality: int, light: float
    ) -> DemoVideo:
        frames = [render_frame(spec, i, size) for i in range(spec.frames)]
        if light != 1.0:
            frames = [ImageEnhance.Brightness(f).enhance(light) for f in frames]
        data = encode_clip(frames, codec, quality)
        return DemoVideo(key, group, variant, data, "mp4", *size, duration=duration, risk=risk)

    videos = [clip(group, "original", size, 70, 1.0)]
    for index, (variant, vsize, quality, light) in enumerate(VIDEO_REENCODES[:reencodes]):
        videos.append(clip(f"{group}-{chr(ord('b') + index)}", variant, vsize, quality, light))
    return videos


def make_videos(seed: int, originals: int, max_total: int | None = None) -> list[DemoVideo]:
    """`originals` clips; every other one gets 1-2 re-encodes, within `max_total` files."""
    videos: list[DemoVideo] = []
    for number in range(originals):
        reencodes = rng_for(seed, "vid-variants", number).randint(1, 2) if number % 2 == 0 else 0
        room = (max_total - len(videos) - (originals - number)) if max_total else reencodes
        videos.extend(make_video_group(seed, number, max(0, min(reencodes, room))))
    return videos


def frame_offsets(duration: float) -> list[float]:
    """Where the service sampled frames: once a second."""
    return [float(s) for s in range(int(duration) + 1) if s < duration or s == 0]


def video_results(
    rng: random.Random, video: DemoVideo, suggestion: str
) -> tuple[list[dict], list[dict]]:
    """(scene_results, frames) for one video. A flagged scene lists the frames that did it."""
    offsets = frame_offsets(video.duration)
    scenes = {scene: scene_result(rng, scene, NORMAL, PASS) for scene in VIDEO_SCENES}
    per_frame = {
        (offset, scene): scene_result(rng, scene, NORMAL, PASS)
        for offset in offsets
        for scene in VIDEO_SCENES
    }
    if suggestion != PASS:
        scene, label = video.risk
        result = scene_result(rng, scene, label, suggestion)
        hits = sorted(rng.sample(offsets, k=rng.randint(1, len(offsets))))
        # The scene's rate is that of its most confident frame; the others are less sure.
        top = rng.choice(hits)
        result["frames"] = []
        for offset in hits:
            rate = (
                result["rate"]
                if offset == top
                else min(result["rate"], rate_for(rng, REVIEW, label))
            )
            result["frames"].append({"offset": offset, "label": label, "rate": rate})
            per_frame[(offset, scene)] = {
                "scene": scene,
                "label": label,
                "suggestion": suggestion_for(label, rate),
                "rate": rate,
            }
        scenes[scene] = result
    frames = [
        {"offset": offset, "results": [per_frame[(offset, scene)] for scene in VIDEO_SCENES]}
        for offset in offsets
    ]
    return [scenes[scene] for scene in VIDEO_SCENES], frames


# --- Texts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    text: str
    label: str | None = None  # set on the words a detector flags


@dataclass(frozen=True)
class DemoText:
    key: str
    group: str
    variant: str
    category: str  # the label a flagging detector gives it; "normal" for harmless chat
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    def flagged(self) -> list[tuple[str, str, int, int]]:
        """(label, context, startPos, endPos) of each flagged segment; endPos is exclusive."""
        spans, start = [], 0
        for segment in self.segments:
            end = start + len(segment.text)
            if segment.label:
                spans.append((segment.label, segment.text, start, end))
            start = end
        return spans


CHAT = (
    "Just finished my morning run, feeling great!",
    "Does anyone know a good recipe for banana bread?",
    "The new update fixed the login bug, thanks team.",
    "That cat video made my day, lol.",
    "Meeting moved to 3pm, see you there.",
    "Happy birthday Sam! Hope it's a good one.",
    "Anyone watching the match tonight?",
    "I think the second option looks cleaner.",
    "Great photo, where was this taken?",
    "Finally fixed my bike, going for a ride this weekend.",
    "Can someone recommend a sci-fi book?",
    "The bakery on 5th street has the best croissants.",
    "Thanks for the help yesterday, really appreciated it.",
    "Rainy day again, perfect for tea and a movie.",
    "Our team shipped the release on time for once!",
)
CHAT_TAILS = ("", " :)", " Cheers.", " Any tips?", " Have a nice day!", " 🙂")

INSULTS = (
    "soggy waffle",
    "potato brain",
    "walnut-headed goblin",
    "clown shoe",
    "nincompoop",
    "dingbat",
    "absolute muppet",
    "rubber chicken",
)
CONTRABAND = (
    "counterfeit designer bags",
    "fake ID cards",
    "unlicensed fireworks",
    "pirated software keys",
    "smuggled rare parrots",
    "knockoff prescription pills",
)
SPAM_HOOKS = (
    "Make $500 a day from home",
    "Cheap followers, 10k for $5",
    "Earn money fast, no experience needed",
    "Free iPhone giveaway",
    "Lose 10kg in a week",
)


def seg(text: str, label: str | None = None) -> Segment:
    return Segment(text, label)


def spam_text(rng: random.Random) -> tuple[str, list[Segment]]:
    hook = rng.choice(SPAM_HOOKS)
    contact = rng.choice(("url", "phone", "wechat"))
    parts = [seg(hook, "spam"), seg(rng.choice(("! ", "!!! ", ". ", " - ")))]
    if contact == "url":
        parts += [seg("Visit "), seg(f"http://{fake_url(rng)}", "ad"), seg(" now")]
    elif contact == "phone":
        parts += [seg("Call "), seg(fake_phone(rng), "ad"), seg(" for details")]
    else:
        parts += [
            seg("contact me on WeChat", "ad"),
            seg(": "),
            seg(f"vx{rng.randint(1000, 9999)}", "ad"),
        ]
    parts.append(seg(rng.choice(("!", " today!", ".", " 💰"))))
    return "ad", parts


def abuse_text(rng: random.Random) -> tuple[str, list[Segment]]:
    opener = rng.choice(
        ("You absolute ", "Listen here, you ", "Nobody asked you, ", "Wow, what a ")
    )
    closer = rng.choice(("!", ". Go away.", ", seriously.", "!!"))
    return "abuse", [seg(opener), seg(rng.choice(INSULTS), "abuse"), seg(closer)]


def contraband_text(rng: random.Random) -> tuple[str, list[Segment]]:
    opener = rng.choice(("Selling ", "Got ", "Cheap ", "In stock: "))
    tail = rng.choice((", no questions asked. DM me", ", discreet shipping", ", cash only"))
    parts = [seg(opener), seg(rng.choice(CONTRABAND), "contraband"), seg(tail)]
    if rng.random() < 0.5:
        parts += [seg(", "), seg(f"call {fake_phone(rng)}", "ad")]
    parts.append(seg("."))
    return "contraband", parts


def flood_text(rng: random.Random) -> tuple[str, list[Segment]]:
    word = rng.choice(("buy", "wow", "up", "first", "lol"))
    flood = " ".join([word] * rng.randint(8, 16))
    return "flood", [seg(flood, "flood"), seg(rng.choice(("!!!", "", " 🔥🔥🔥")))]


def meaningless_text(rng: random.Random) -> tuple[str, list[Segment]]:
    letters = "qwertyuiopasdfghjklzxcvbnm"
    words = ["".join(rng.choices(letters, k=rng.randint(3, 8))) for _ in range(rng.randint(3, 6))]
    return "meaningless", [seg(" ".join(words), "meaningless")]


def chat_text(rng: random.Random) -> tuple[str, list[Segment]]:
    return NORMAL, [seg(rng.choice(CHAT) + rng.choice(CHAT_TAILS))]


# Kinds of text with their share of the pool: harmless chat is the most common.
TEXT_KINDS = (
    (chat_text, 40),
    (spam_text, 25),
    (abuse_text, 15),
    (contraband_text, 10),
    (flood_text, 5),
    (meaningless_text, 5),
)

# Look-alike Cyrillic letters: the classic filter evasion.
HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "c": "с", "p": "р", "x": "х", "y": "у", "i": "і"}
ZERO_WIDTH_SPACE = "\u200b"
SYNONYMS = {
    "Cheap": "Cheapest",
    "now": "today",
    "great": "awesome",
    "day": "afternoon",
    "Selling": "Offering",
    "good": "nice",
    "fast": "quick",
    "best": "finest",
    "Visit": "Check",
}


def with_homoglyphs(rng: random.Random, text: str) -> str:
    swappable = [i for i, ch in enumerate(text) if ch in HOMOGLYPHS]
    chosen = set(rng.sample(swappable, k=min(len(swappable), rng.randint(1, 3))))
    return "".join(HOMOGLYPHS[ch] if i in chosen else ch for i, ch in enumerate(text))


def with_zero_width(rng: random.Random, text: str) -> str:
    if len(text) < 2:
        return text
    at = rng.randrange(1, len(text))
    return text[:at] + ZERO_WIDTH_SPACE + text[at:]


def with_casing(rng: random.Random, text: str) -> str:
    changed = [c for c in (text.upper(), text.lower(), text.title()) if c != text]
    return rng.choice(changed) if changed else text


def with_punctuation(rng: random.Random, text: str) -> str:
    swaps = (("!", "!!"), (".", "..."), (",", ""), ("!!", "!"), ("?", "??"))
    present = [(a, b) for a, b in swaps if a in text]
    if not present:  # no punctuation to play with: a doubled space does as well
        spaces = [i for i, ch in enumerate(text) if ch == " "]
        if not spaces:
            return text
        at = rng.choice(spaces)
        return text[:at] + " " + text[at:]
    old, new = rng.choice(present)
    return text.replace(old, new, 1)


def with_synonym(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    known = [i for i, w in enumerate(words) if w.strip(",.!?") in SYNONYMS]
    if known:
        i = rng.choice(known)
        bare = words[i].strip(",.!?")
        words[i] = words[i].replace(bare, SYNONYMS[bare])
    elif len(words) > 2:  # no synonym: swap two neighbouring words instead
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


# Edits of a whole segment; flagged segments get only those an evader would use.
TEXT_EDITS = {
    "homoglyphs": with_homoglyphs,
    "zero-width": with_zero_width,
    "casing": with_casing,
    "punctuation": with_punctuation,
    "swapped-word": with_synonym,
}
FLAGGED_EDITS = {"homoglyphs", "zero-width", "casing"}


def edit_text(rng: random.Random, original: DemoText, key: str) -> DemoText:
    edits = rng.sample(tuple(TEXT_EDITS), k=rng.randint(1, 2))
    segments = list(original.segments)
    for edit in edits:
        segments = apply_edit(rng, segments, edit)
    if "".join(s.text for s in segments) == original.text:
        # Some edits can be no-ops (swapping two equal words); a variant must differ.
        edits.append("zero-width")
        segments = apply_edit(rng, segments, "zero-width")
    return DemoText(key, original.group, "+".join(edits), original.category, tuple(segments))


def apply_edit(rng: random.Random, segments: list[Segment], edit: str) -> list[Segment]:
    candidates = [
        i
        for i, s in enumerate(segments)
        if len(s.text.strip()) > 1 and (not s.label or edit in FLAGGED_EDITS)
    ]
    if not candidates:
        return segments
    i = rng.choice(candidates)
    edited = list(segments)
    edited[i] = Segment(TEXT_EDITS[edit](rng, segments[i].text), segments[i].label)
    return edited


def make_text_group(seed: int, number: int, variants: int) -> list[DemoText]:
    rng = rng_for(seed, "txt", number)
    kinds, weights = zip(*TEXT_KINDS, strict=True)
    # The first originals go through every kind, so even a small pool has each.
    kind = kinds[number] if number < len(kinds) else rng.choices(kinds, weights)[0]
    category, segments = kind(rng)
    group = f"{number:03d}"
    original = DemoText(group, group, "original", category, tuple(segments))
    return [original] + [
        edit_text(rng, original, f"{group}-{chr(ord('b') + i)}") for i in range(variants)
    ]


def make_texts(seed: int, originals: int) -> list[DemoText]:
    """`originals` texts; every third gets 1-3 near-duplicate variants."""
    texts: list[DemoText] = []
    for number in range(originals):
        variants = rng_for(seed, "txt-variants", number).randint(1, 3) if number % 3 == 0 else 0
        texts.extend(make_text_group(seed, number, variants))
    return texts


def text_results(rng: random.Random, text: DemoText, suggestion: str) -> list[dict]:
    """The antispam result; a flagged text carries details pointing at its flagged words."""
    if suggestion == PASS or text.category == NORMAL:
        return [scene_result(rng, TEXT_SCENE, NORMAL, PASS)]
    result = scene_result(rng, TEXT_SCENE, text.category, suggestion)
    by_label: dict[str, dict[str, list[dict]]] = {}
    for label, context, start, end in text.flagged():
        positions = by_label.setdefault(label, {}).setdefault(context, [])
        positions.append({"startPos": start, "endPos": end})
    result["details"] = [
        {
            "label": label,
            "contexts": [{"context": c, "positions": p} for c, p in contexts.items()],
        }
        for label, contexts in by_label.items()
    ]
    return [result]
