"""The quality set of the near-duplicate matcher: generated, never committed as files.

    generate(Path("/tmp/mc-quality"), images=200, texts=200)

writes into the folder
- `images/<group>-<transform>.<ext>`: source pictures (photo-like, cartoons, text-heavy
  ads and screenshots, flat pictures with a low PDQ quality), one copy per IMAGE_TRANSFORMS
  entry, and unrelated negatives (`neg-<n>`, drawn from other seeds);
- unless `hard=False`, the hard set of issue 8 (samples/quality/hard_edits.py): one copy of
  each source per HARD_TRANSFORMS entry (cropped, bordered, captioned, rotated), and as many
  hard negative pairs `hneg-<n>-a`, `hneg-<n>-b` as sources (other regions of one picture,
  unrelated pictures sharing a border, caption bar or letterbox); their manifest entries
  have "set": "hard", the pairs also "negative": the kind of negative;
- `manifest.json`: every image file with its group, kind and transform, and every text:
  sources (spam, abuse, contraband offers, ordinary comments), one edit per TEXT_EDITS entry
  that applies to it, and benign texts on the same topics as negatives.

Everything is drawn from `random.Random` seeded by (seed, kind of item, number), so item 7 is
the same whatever the set's size. benchmarks/quality.py scores the matcher on it.
"""

from __future__ import annotations

import io
import json
import random
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from audit import demo
from samples.quality import hard_edits

DEFAULT_FOLDER = Path(tempfile.gettempdir()) / "mc-quality"

# --- Images ---------------------------------------------------------------------------------


def draw_photo(rng: random.Random, w: int, h: int) -> Image.Image:
    """Photo-like: a gradient, a soft texture, blurred shapes and grain."""
    img = Image.blend(demo.draw_gradient(rng, w, h), demo.draw_noise(rng, w, h), 0.35)
    shapes = demo.draw_shapes(rng, w, h).filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(rng.randint(2, 5)):
        draw.ellipse(demo.random_box(rng, w, h), fill=rng.randint(120, 230))
    img = Image.composite(shapes, img, mask.filter(ImageFilter.GaussianBlur(6)))
    grain = Image.frombytes("L", (w, h), rng.randbytes(w * h)).convert("RGB")
    return Image.blend(img, grain, rng.uniform(0.05, 0.15))


def draw_meme(rng: random.Random, w: int, h: int) -> Image.Image:
    """A photo with a caption at the top and the bottom."""
    img = draw_photo(rng, w, h)
    draw = ImageDraw.Draw(img)
    words = ("WHEN", "YOU", "FINALLY", "GET", "THE", "DEAL", "MONDAY", "AGAIN", "NOBODY", "ME")
    for y in (h // 20, h - h // 6):
        text = " ".join(rng.choices(words, k=rng.randint(2, 4)))
        face = demo.fitting_font(draw, text, h // 9, w - w // 10)
        draw.text((w // 20, y), text, fill="#ffffff", font=face, stroke_width=2, stroke_fill="#000")
    return img


def draw_flat(rng: random.Random, w: int, h: int) -> Image.Image:
    """A flat, simple picture (a logo, a banner, a soft gradient): little for PDQ to use."""
    style = rng.choice(("shape", "gradient", "band"))
    if style == "gradient":
        base = Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270))).resize((w, h))
        low, high = rng.sample(demo.PALETTE, 2)
        return ImageOps.colorize(base, low, high).filter(ImageFilter.GaussianBlur(4))
    img = Image.new("RGB", (w, h), demo.random_color(rng))
    draw = ImageDraw.Draw(img)
    if style == "shape":
        box = demo.random_box(rng, w, h)
        draw.ellipse(box, fill=demo.random_color(rng))
    else:
        top = rng.randint(0, h * 2 // 3)
        draw.rectangle((0, top, w, top + rng.randint(h // 10, h // 3)), fill=demo.random_color(rng))
    return img


# Kinds of picture with their weight in the set. demo's gradients and the flat pictures
# have a low PDQ quality (< 50): about one source in ten.
IMAGE_KINDS: dict[str, tuple[Callable[[random.Random, int, int], Image.Image], int]] = {
    "photo": (draw_photo, 4),
    "meme": (draw_meme, 2),
    "ad": (demo.draw_ad, 3),
    "landscape": (demo.draw_landscape, 2),
    "avatar": (demo.draw_avatar, 2),
    "shapes": (demo.draw_shapes, 2),
    "gradient": (demo.draw_gradient, 1),
    "noise": (demo.draw_noise, 1),
    "code": (demo.draw_code, 1),
    "qrcode": (demo.draw_qrcode, 1),
    "flat": (draw_flat, 1),
}
LOSSLESS_KINDS = {"code", "qrcode", "flat", "shapes"}  # screenshots and graphics: PNG


def _scaled(img: Image.Image, factor: float) -> Image.Image:
    size = (max(16, round(img.width * factor)), max(16, round(img.height * factor)))
    return img.resize(size, Image.Resampling.LANCZOS)


def _watermarked(rng: random.Random, img: Image.Image) -> Image.Image:
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    # A handle or credit in a corner, as reposting apps and stock sites add them.
    text = rng.choice(("© stockphoto.example", f"@user{rng.randint(10, 9999)}", "shared via app"))
    face = demo.fitting_font(draw, text, max(12, img.height // 18), img.width * 2 // 5)
    margin = max(4, img.width // 40)
    width = int(draw.textlength(text, font=face))
    x = rng.choice((margin, img.width - width - margin))
    y = rng.choice((margin, img.height - face.size - 2 * margin))
    white, black = (255, 255, 255, 140), (0, 0, 0, 140)
    draw.text((x, y), text, fill=white, font=face, stroke_width=1, stroke_fill=black)
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


Change = Callable[[random.Random, Image.Image], Image.Image]
# Each copy: how the pixels change, and how it is saved (format, quality).
IMAGE_TRANSFORMS: dict[str, tuple[Change, str, int]] = {
    "resize-0.5": (lambda rng, img: _scaled(img, 0.5), "JPEG", 85),
    "resize-1.5": (lambda rng, img: _scaled(img, 1.5), "JPEG", 85),
    "jpeg-q50": (lambda rng, img: img, "JPEG", 50),
    "webp-q50": (lambda rng, img: img, "WEBP", 50),
    "blur-1.5": (lambda rng, img: img.filter(ImageFilter.GaussianBlur(1.5)), "JPEG", 85),
    "brightness+25%": (lambda rng, img: ImageEnhance.Brightness(img).enhance(1.25), "JPEG", 85),
    "contrast+25%": (lambda rng, img: ImageEnhance.Contrast(img).enhance(1.25), "JPEG", 85),
    "grayscale": (lambda rng, img: ImageOps.grayscale(img), "JPEG", 85),
    "watermark": (_watermarked, "JPEG", 85),
    "flip-h": (lambda rng, img: ImageOps.mirror(img), "JPEG", 85),
    "rot90": (lambda rng, img: img.transpose(Image.Transpose.ROTATE_90), "JPEG", 85),
    "rot180": (lambda rng, img: img.transpose(Image.Transpose.ROTATE_180), "JPEG", 85),
}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def encode(img: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """The picture as a file; `quality` applies to JPEG and WEBP (PNG is lossless)."""
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, "PNG")
    else:
        img.save(buf, fmt, quality=quality)
    return buf.getvalue()


def draw_source(rng: random.Random, number: int) -> tuple[str, Image.Image]:
    kinds = tuple(IMAGE_KINDS)
    weights = [weight for _, weight in IMAGE_KINDS.values()]
    # The first pictures go through every kind, so even a tiny set has each.
    kind = kinds[number] if number < len(kinds) else rng.choices(kinds, weights)[0]
    w, h = rng.randint(320, 1024), rng.randint(320, 1024)
    return kind, IMAGE_KINDS[kind][0](rng, w, h)


def image_group(seed: int, number: int) -> list[tuple[str, str, str, bytes]]:
    """(name, kind, transform, file) of source `number` and its copies."""
    rng = demo.rng_for(seed, "quality-img", number)
    kind, img = draw_source(rng, number)
    fmt = "PNG" if kind in LOSSLESS_KINDS else "JPEG"
    data = encode(img, fmt, 92)
    group = f"{number:04d}"
    items = [(f"{group}-source.{EXTENSIONS[fmt]}", kind, "source", data)]
    shared = Image.open(io.BytesIO(data)).convert("RGB")  # copies start from the file
    for name, (change, copy_fmt, quality) in IMAGE_TRANSFORMS.items():
        copy = encode(change(rng, shared), copy_fmt, quality)
        items.append((f"{group}-{name}.{EXTENSIONS[copy_fmt]}", kind, name, copy))
    return items


def negative_image(seed: int, number: int) -> tuple[str, str, str, bytes]:
    rng = demo.rng_for(seed, "quality-neg", number)
    kind, img = draw_source(rng, number)
    fmt = "PNG" if kind in LOSSLESS_KINDS else "JPEG"
    return f"neg-{number:04d}.{EXTENSIONS[fmt]}", kind, "negative", encode(img, fmt, 90)


# --- Texts ----------------------------------------------------------------------------------

SPAM_PRODUCTS = (
    "cheap Rolex watches",
    "replica designer handbags",
    "weight loss pills that really work",
    "real Instagram followers and likes",
    "VIP crypto trading signals",
    "online casino bonus codes",
    "instant payday loans without credit check",
    "luxury sunglasses at factory prices",
    "work from home jobs paying daily",
    "brand new iPhones below retail",
    "essay writing service for students",
    "discount airline tickets",
)
SPAM_HOOKS = (
    "Best prices online!",
    "Only today:",
    "Hurry up, stock is limited.",
    "Don't miss out!",
    "100% guaranteed results.",
    "Thousands of happy customers.",
    "Limited time offer.",
    "You won't believe these deals.",
)
SPAM_DEALS = (
    "Up to {n}% off everything",
    "Buy one get one free",
    "Prices from ${n}",
    "Free shipping worldwide on orders over ${n}",
    "Earn ${n}0 a week",
    "First {n} customers get a free gift",
)
SPAM_CLOSERS = ("Order now!", "DM for details.", "Reply fast.", "Act now!", "Don't wait.")
INSULTS = (
    "soggy waffle",
    "potato brain",
    "walnut-headed goblin",
    "clown shoe",
    "nincompoop",
    "absolute muppet",
    "rubber chicken",
    "overcooked noodle",
)
ABUSE_OPENERS = (
    "Listen here, you",
    "Nobody asked for your opinion, you",
    "What a pathetic post, you",
    "Go away and stop commenting, you",
    "Honestly you are the dumbest",
    "Every single thing you write is garbage, you",
)
ABUSE_TAILS = (
    "Get lost.",
    "Nobody here likes you.",
    "Delete your account already.",
    "I hope your posts get banned forever.",
    "Seriously, just stop talking.",
    "",
)
CONTRABAND_ITEMS = (
    "counterfeit designer bags",
    "fake ID cards",
    "unlicensed fireworks",
    "pirated software keys",
    "smuggled rare parrots",
    "knockoff prescription pills",
    "stolen credit card numbers",
    "untaxed cigarettes by the carton",
)
CONTRABAND_VERBS = ("Selling", "Got plenty of", "Cheap", "In stock now:", "Wholesale")
CONTRABAND_TERMS = (
    "no questions asked",
    "discreet shipping to any country",
    "cash or crypto only",
    "bulk discounts available",
    "tracking number included",
)
COMMENT_OPENERS = ("Honestly,", "Just saying,", "Update:", "Quick question:", "Fun fact:", "")
COMMENT_BODIES = (
    "the new bakery on Elm street makes the best sourdough I have ever had",
    "my bike chain keeps slipping on the steep hills near the river",
    "we finally finished painting the kitchen and it looks so much brighter",
    "the library extended its opening hours for the exam season",
    "our team won the match on Saturday after two extra time periods",
    "the tomato plants on my balcony are producing more than we can eat",
    "the concert in the park was cancelled because of the thunderstorm",
    "I switched to a standing desk and my back pain is almost gone",
    "the ferry schedule changes next week so plan your trips carefully",
    "my grandmother's lemon cake recipe works better with less sugar",
)
COMMENT_TAILS = ("Anyone else noticed?", "Highly recommend.", "Thoughts?", "Cheers!", "")

# Benign texts on the spam's, abuse's and contraband's topics: what a matcher must not catch.
BENIGN_TEMPLATES = (
    "My grandfather left me his old {watch}, it still keeps perfect time after forty years.",
    "Does anyone know a shop that repairs the clasp of a {watch} without charging a fortune?",
    "I finally bought a {bag} with my first salary and I am really proud of it.",
    "The pharmacist said these {pills} should be taken with food, twice a day.",
    "How do small artists get more {followers} without paying for ads? Honest tips welcome.",
    "Lost dog near the station this morning, brown collar, call {phone} if you see him.",
    "Our club is selling {cakes} this Saturday to raise money for the animal shelter.",
    "The {fireworks} show at the harbour starts at nine, bring a blanket and some snacks.",
    "Customs kept my parcel for two weeks, apparently {parrots} need special paperwork.",
    "Please don't call people {insult} in the comments, we are all learning here.",
    "I felt like a {insult} when I locked my keys in the car again today.",
    "The bank offered me a loan but the interest rate on {loans} is way too high for me.",
    "Is it safe to buy {tickets} from resellers or should I wait for the official sale?",
    "My cousin works from home for a real company and says the daily commute is the desk.",
    "Tried my luck at the {casino} on holiday, lost twenty dollars and had a great evening.",
    "Reminder: the software licence keys for the lab are on the shared drive, not for sale.",
    "Our little bakery now offers free shipping on orders over $30, thank you for the support!",
    "The watch strap I ordered online was {watch} branded but arrived two weeks late.",
    "Anyone else get those scam messages about {pills}? I just block the number.",
    "Be careful, someone is selling {bag} replicas at the market, report them to the police.",
    "Went to the store for a new phone, the salesman tried to sell me {loans} as well.",
    "Our school raised money with {cakes} and {fireworks} for the spring festival.",
    "The vet says {parrots} can live for decades if you feed them properly.",
    "I reported a fake account that was selling {followers}, please do the same.",
    "My daughter wants {tickets} for her birthday, where do you buy them safely?",
    "The news said police seized {fireworks} without a licence near the border yesterday.",
    "Calling someone a {insult} is not an argument, please keep the discussion civil.",
    "Just got my first paycheck from the new job, treating myself to a {watch} today.",
    "Any recommendations for {pills} that don't make you sleepy during the day?",
    "Our neighbour's {casino} stories are the highlight of every barbecue, honestly.",
)
BENIGN_OPENERS = ("", "Hi all, ", "Quick question. ", "Update: ", "Honestly, ", "PSA: ")
BENIGN_TAILS = ("", " Thanks!", " Any advice?", " Have a good weekend.", " Cheers.", " :)")
BENIGN_FILLERS = {
    "watch": ("watch", "wristwatch", "Rolex", "pocket watch"),
    "bag": ("designer handbag", "leather bag", "backpack"),
    "pills": ("vitamin pills", "allergy pills", "iron tablets"),
    "followers": ("followers", "real followers", "likes and followers"),
    "cakes": ("cakes", "lemon cakes", "cookies"),
    "fireworks": ("fireworks", "New Year fireworks", "drone"),
    "parrots": ("rare parrots", "exotic birds", "tropical fish"),
    "insult": ("potato brain", "clown", "muppet", "goblin"),
    "loans": ("payday loans", "credit cards", "student loans"),
    "tickets": ("airline tickets", "concert tickets", "cheap tickets"),
    "casino": ("casino", "racetrack", "arcade"),
}
WORDS = ("really", "very", "new", "best", "today", "great", "cheap", "free", "now", "please")
EMOJI = ("🔥", "💰", "😂", "👉", "✅", "💯", "🎁", "😡", "👍", "🚀")
LOOKALIKES = {
    "a": "аα", "c": "сϲ", "e": "еε", "i": "іι", "j": "ј", "o": "оο", "p": "рρ", "s": "ѕ",
    "x": "хχ", "y": "у", "d": "ԁ", "h": "һ", "k": "κ", "v": "ν", "A": "АΑ", "B": "ВΒ",
    "E": "ЕΕ", "H": "НΗ", "K": "КΚ", "M": "МΜ", "O": "ОΟ", "P": "РΡ", "T": "ТΤ", "X": "ХΧ",
}  # fmt: skip
LEET = {"a": "4@", "e": "3", "i": "1", "o": "0", "s": "5$", "t": "7", "l": "1"}
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")


def _contact(rng: random.Random) -> str:
    return rng.choice(
        (
            f"Call +1 555-01{rng.randint(0, 99):02d}",
            f"WhatsApp +44 7700 900{rng.randint(0, 999):03d}",
            f"add vx{rng.randint(1000, 9999)} on WeChat",
            f"visit www.{rng.choice(demo.FAKE_DOMAINS)}/{rng.choice(('sale', 'vip'))}"
            f"{rng.randint(1, 99)}",
            f"Telegram @deals{rng.randint(100, 999)}",
        )
    )


def spam_text(rng: random.Random) -> str:
    parts = [
        rng.choice(SPAM_HOOKS),
        f"{rng.choice(SPAM_PRODUCTS).capitalize()}.",
        rng.choice(SPAM_DEALS).format(n=rng.randint(2, 9) * 10) + ".",
        f"{_contact(rng)}.",
        rng.choice(SPAM_CLOSERS),
    ]
    if rng.random() < 0.5:
        parts[0], parts[1] = parts[1], parts[0]
    return " ".join(parts)


def abuse_text(rng: random.Random) -> str:
    return f"{rng.choice(ABUSE_OPENERS)} {rng.choice(INSULTS)}! {rng.choice(ABUSE_TAILS)}".strip()


def contraband_text(rng: random.Random) -> str:
    terms = ", ".join(rng.sample(CONTRABAND_TERMS, 2))
    return (
        f"{rng.choice(CONTRABAND_VERBS)} {rng.choice(CONTRABAND_ITEMS)}, {terms}. {_contact(rng)}."
    )


def comment_text(rng: random.Random) -> str:
    body = rng.choice(COMMENT_BODIES)
    text = f"{rng.choice(COMMENT_OPENERS)} {body}. {rng.choice(COMMENT_TAILS)}".strip()
    return text[0].upper() + text[1:]


# Kinds of source text with their weight in the set.
TEXT_KINDS: dict[str, tuple[Callable[[random.Random], str], int]] = {
    "spam": (spam_text, 4),
    "abuse": (abuse_text, 2),
    "contraband": (contraband_text, 2),
    "comment": (comment_text, 2),
}


def benign_text(rng: random.Random) -> str:
    template = rng.choice(BENIGN_TEMPLATES)
    fillers = {key: rng.choice(options) for key, options in BENIGN_FILLERS.items()}
    text = template.format(phone=f"+1 555-01{rng.randint(0, 99):02d}", **fillers)
    return f"{rng.choice(BENIGN_OPENERS)}{text}{rng.choice(BENIGN_TAILS)}"


def _positions(text: str, test: Callable[[str], bool]) -> list[int]:
    return [i for i, ch in enumerate(text) if test(ch)]


def _replace_some(rng: random.Random, text: str, table: dict[str, str], share: float) -> str:
    spots = _positions(text, lambda ch: ch in table)
    chosen = set(rng.sample(spots, max(1, round(len(spots) * share)))) if spots else set()
    return "".join(rng.choice(table[ch]) if i in chosen else ch for i, ch in enumerate(text))


def _words(text: str) -> list[str]:
    return text.split(" ")


def with_lookalikes(rng: random.Random, text: str) -> str:
    return _replace_some(rng, text, LOOKALIKES, rng.uniform(0.3, 0.8))


def with_full_width(rng: random.Random, text: str) -> str:
    # U+FF01..U+FF5E mirror ASCII 0x21..0x7E; U+3000 is the ideographic space.
    wide = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)} | {" ": "\u3000"}
    return _replace_some(rng, text, wide, rng.uniform(0.5, 1.0))


def with_zero_width(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(3, 10)):
        chars.insert(rng.randrange(1, len(chars)), rng.choice(INVISIBLE))
    return "".join(chars)


def with_spacing(rng: random.Random, text: str) -> str:
    words = _words(text)
    long = [i for i, w in enumerate(words) if len(w) >= 4] or [0]
    for i in rng.sample(long, min(len(long), rng.randint(1, 3))):
        words[i] = rng.choice((" ", ".", "-", "_", "*", " . ")).join(words[i])
    return " ".join(words)


def with_leetspeak(rng: random.Random, text: str) -> str:
    return _replace_some(rng, text, LEET, rng.uniform(0.3, 0.9))


def with_case(rng: random.Random, text: str) -> str:
    style = rng.choice(("upper", "lower", "random"))
    if style == "upper":
        return text.upper()
    if style == "lower":
        return text.lower()
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


def with_emoji(rng: random.Random, text: str) -> str:
    words = _words(text)
    for _ in range(rng.randint(2, 5)):
        words.insert(
            rng.randrange(len(words) + 1), "".join(rng.choices(EMOJI, k=rng.randint(1, 3)))
        )
    return " ".join(words)


def with_word_added(rng: random.Random, text: str) -> str:
    words = _words(text)
    words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS))
    return " ".join(words)


def with_word_removed(rng: random.Random, text: str) -> str:
    words = _words(text)
    del words[rng.randrange(len(words))]
    return " ".join(words)


def with_word_swapped(rng: random.Random, text: str) -> str:
    words = _words(text)
    i = rng.randrange(len(words))
    words[i] = rng.choice([w for w in WORDS if w != words[i].lower()])
    return " ".join(words)


def with_other_digits(rng: random.Random, text: str) -> str | None:
    digits = _positions(text, str.isdigit)
    if not digits:
        return None  # nothing to change: the edit does not apply to this text
    chosen = set(rng.sample(digits, min(len(digits), rng.randint(1, 3))))
    other = {d: [x for x in "0123456789" if x != d] for d in "0123456789"}
    return "".join(rng.choice(other[ch]) if i in chosen else ch for i, ch in enumerate(text))


def with_combined(rng: random.Random, text: str) -> str:
    """What a determined evader does: a changed word and three disguises at once."""
    text = rng.choice((with_word_added, with_word_removed, with_word_swapped))(rng, text)
    disguises = (with_lookalikes, with_full_width, with_zero_width, with_spacing, with_leetspeak)
    for disguise in rng.sample((*disguises, with_case, with_emoji), 3):
        text = disguise(rng, text)
    return text


TEXT_EDITS: dict[str, Callable[[random.Random, str], str | None]] = {
    "look-alikes": with_lookalikes,
    "full-width": with_full_width,
    "zero-width": with_zero_width,
    "spacing": with_spacing,
    "leetspeak": with_leetspeak,
    "case": with_case,
    "emoji": with_emoji,
    "word-added": with_word_added,
    "word-removed": with_word_removed,
    "word-swapped": with_word_swapped,
    "other-digits": with_other_digits,
    "combined": with_combined,
}


def text_group(seed: int, number: int) -> list[dict]:
    rng = demo.rng_for(seed, "quality-txt", number)
    kinds = tuple(TEXT_KINDS)
    weights = [weight for _, weight in TEXT_KINDS.values()]
    kind = kinds[number] if number < len(kinds) else rng.choices(kinds, weights)[0]
    source = TEXT_KINDS[kind][0](rng)
    group = f"{number:04d}"
    items = [{"group": group, "kind": kind, "edit": "source", "text": source}]
    for name, edit in TEXT_EDITS.items():
        edited = edit(rng, source)
        if edited is not None and edited != source:
            items.append({"group": group, "kind": kind, "edit": name, "text": edited})
    return items


def benign_texts(seed: int, count: int) -> list[dict]:
    rng = demo.rng_for(seed, "quality-benign", 0)
    texts: list[str] = []
    while len(texts) < count and len(texts) < 10 * count:
        text = benign_text(rng)
        if text not in texts:
            texts.append(text)
    return [
        {"group": f"benign-{i:04d}", "kind": "benign", "edit": "negative", "text": text}
        for i, text in enumerate(texts)
    ]


# --- The folder -----------------------------------------------------------------------------


def generate(
    folder: Path = DEFAULT_FOLDER,
    *,
    images: int = 200,
    texts: int = 200,
    seed: int = 0,
    workers: int | None = None,
    hard: bool = True,
) -> dict:
    """Write the set into `folder` (replacing an earlier one) and return its manifest.

    Pictures are drawn in `workers` processes (default: one per CPU).
    """
    image_folder = folder / "images"
    image_folder.mkdir(parents=True, exist_ok=True)
    for old in image_folder.iterdir():
        old.unlink()
    jobs = [(image_folder, seed, "source", n, hard) for n in range(images)]
    jobs += [(image_folder, seed, "negative", n, hard) for n in range(images)]
    if hard:
        jobs += [(image_folder, seed, "hard-negative", n, hard) for n in range(images)]
    if workers == 1:
        written = list(map(_write_images, jobs))
    else:
        with ProcessPoolExecutor(workers) as pool:
            written = list(pool.map(_write_images, jobs, chunksize=4))
    text_entries = [item for n in range(texts) for item in text_group(seed, n)]
    text_entries += benign_texts(seed, texts)
    manifest = {
        "seed": seed,
        "images": [entry for entries in written for entry in entries],
        "texts": text_entries,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    return manifest


def _write_images(job: tuple[Path, int, str, int, bool]) -> list[dict]:
    image_folder, seed, role, number, hard = job
    if role == "hard-negative":
        pair = hard_edits.hard_negative_files(seed, number)
        group = f"hneg-{number:04d}"
        return [
            _write(image_folder, name, data, group, kind, role, set="hard", negative=what)
            for name, kind, what, data in pair
        ]
    if role == "negative":
        name, kind, transform, data = negative_image(seed, number)
        return [_write(image_folder, name, data, "negative", kind, transform)]
    files = image_group(seed, number)
    group, (_, kind, _, source) = f"{number:04d}", files[0]
    entries = [_write(image_folder, name, data, group, kind, t) for name, _, t, data in files]
    if hard:
        entries += [
            _write(image_folder, name, data, group, kind, t, set="hard")
            for name, _, t, data in hard_edits.hard_copies(seed, number, kind, source)
        ]
    return entries


def _write(folder: Path, name: str, data: bytes, group: str, kind: str, transform: str, **more):
    (folder / name).write_bytes(data)
    return {"file": f"images/{name}", "group": group, "kind": kind, "transform": transform, **more}
