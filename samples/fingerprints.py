"""Fingerprints that judge whether two images, texts or videos are near-duplicates.

Plain functions over bytes, strings and paths; `samples.matching` stores and indexes what
they return. The thresholds below were measured on the generated quality set
(`samples/quality/dataset.py`, scored by `benchmarks/quality.py`).

Images: PDQ (Meta's 256-bit perceptual hash) of the picture and of its 7 other dihedral
forms, so a flipped or rotated copy matches. Texts: a normalised form that undoes the usual
filter evasions, its SHA-256, and a MinHash signature over character shingles with LSH
band keys for the database. Videos: PDQ of one frame a second.

Changing the hashing (sizes, shingles, seeds, the normalisation tables) changes every stored
fingerprint: recompute them all, or old and new ones will no longer match.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import unicodedata
import warnings
from dataclasses import dataclass

import numpy as np
import pdqhash
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from audit import media

# --- Images ---------------------------------------------------------------------------------

PDQ_DISTANCE = 31  # Meta's recommended match distance for PDQ (out of 256 bits)
# Hashes under this PDQ quality come from flat or simple pictures (little gradient), whose
# bits are close to noise; they match only at LOW_QUALITY_DISTANCE. Measured with the
# low-quality sweep of benchmarks/quality.py over seeds 0-3 (35,000 unrelated pairs with a
# low-quality hash): no false positive up to 16 (the closest unrelated pair was at 20, then
# 24), while 16 keeps 93-98% of the copies that 31 would find.
PDQ_MIN_QUALITY = 50
LOW_QUALITY_DISTANCE = 16
# Pictures are hashed at this size at most (longer side): PDQ itself works on 64x64, so a
# larger input only costs time (256 matched best on the quality set, ahead of 128 and 512).
# JPEGs are decoded at a reduced scale (libjpeg's DCT scaling, 1/2 to 1/8) that is still at
# least DECODE_SIZE: shrinking straight to 256 that way lost text-heavy pictures.
HASH_SIZE = 256
DECODE_SIZE = 512

# The dihedral forms besides the picture itself, with how the pixels are moved.
VARIANT_FORMS = {
    "flip-h": Image.Transpose.FLIP_LEFT_RIGHT,
    "flip-v": Image.Transpose.FLIP_TOP_BOTTOM,
    "rot90": Image.Transpose.ROTATE_90,
    "rot180": Image.Transpose.ROTATE_180,
    "rot270": Image.Transpose.ROTATE_270,
    "transpose": Image.Transpose.TRANSPOSE,
    "transverse": Image.Transpose.TRANSVERSE,
}


@dataclass(frozen=True)
class ImageFingerprint:
    exact: str  # sha256 hex of the decoded RGB pixels and their size (see _image_exact)
    pdq: bytes  # 32 bytes
    quality: int  # PDQ quality, 0-100
    variants: tuple[bytes, ...]  # PDQ of the forms in VARIANT_FORMS, in that order


def image_fingerprint(data: bytes) -> ImageFingerprint:
    """Fingerprint of an image file; raises media.MediaError if it is not an acceptable image.

    Only the first frame of an animation is fingerprinted.
    """
    rgb = _image_decode(data)
    exact = _image_exact(rgb)
    small = _image_shrink(rgb, HASH_SIZE)
    pdq, quality = _pdq(small)
    variants = tuple(_pdq(small.transpose(method))[0] for method in VARIANT_FORMS.values())
    return ImageFingerprint(exact=exact, pdq=pdq, quality=quality, variants=variants)


def hamming(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def pdq_threshold(quality: int, distance: int = PDQ_DISTANCE) -> int:
    """The match distance for a hash of this PDQ quality under a policy's `distance`."""
    if quality >= PDQ_MIN_QUALITY:
        return distance
    return min(distance, LOW_QUALITY_DISTANCE)


def image_similar(
    a: ImageFingerprint, b: ImageFingerprint, distance: int = PDQ_DISTANCE
) -> tuple[bool, int, str]:
    """(matched, best distance, form): form is "exact", "pdq", or the VARIANT_FORMS name of
    the transformation of `b` that looks like `a` ("rot90": `a` is `b` turned 90° left)."""
    if a.exact == b.exact:
        return True, 0, "exact"
    best, form = hamming(a.pdq, b.pdq), "pdq"
    for name, variant in zip(VARIANT_FORMS, b.variants, strict=True):
        d = hamming(a.pdq, variant)
        if d < best:
            best, form = d, name
    # The less informative of the two hashes decides how close is close enough.
    return best <= pdq_threshold(min(a.quality, b.quality), distance), best, form


def _image_decode(data: bytes) -> Image.Image:
    """The picture as RGB, with the guards of media.image_inspect() but decoded only once."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=media.ALLOWED_IMAGE_FORMATS) as image:
                _image_check_pixels(*image.size)  # from the header, before any decoding
                if image.format in ("JPEG", "MPO"):
                    scale = min(1.0, DECODE_SIZE / max(image.size))
                    image.draft("RGB", (round(image.width * scale), round(image.height * scale)))
                image.load()  # truncated or corrupt data fails here
                _image_upright(image)
                return _image_rgb(image)
        except media.MediaError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise media.MediaError("Image dimensions are too large to decode safely.") from exc
        except UnidentifiedImageError as exc:
            raise media.MediaError(
                "Not a supported image format: use JPEG, PNG, GIF, WEBP or BMP."
            ) from exc
        except Exception as exc:  # Pillow raises many exception types on malformed input
            raise media.MediaError(
                "The image is corrupt or truncated and cannot be decoded."
            ) from exc


def _image_check_pixels(width: int, height: int) -> None:
    max_pixels = settings.RESULTS_MAX_IMAGE_PIXELS
    if width < 1 or height < 1:
        raise media.MediaError("The image has no pixels.")
    if width * height > max_pixels:
        raise media.MediaError(
            f"Image is too large: {width}x{height} pixels exceeds the limit of {max_pixels}."
        )


def _image_upright(image: Image.Image) -> None:
    # Viewers apply the EXIF orientation, so a sideways-tagged photo is seen upright. A broken
    # EXIF block (media.image_inspect() does not read it) leaves the pixels as stored.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(image, in_place=True)


def _image_rgb(image: Image.Image) -> Image.Image:
    """RGB as a viewer shows it: transparency over white, 16-bit grey scaled, not clipped."""
    if image.mode.startswith("I"):  # 16-bit PNG greyscale: Pillow's convert() would clip
        levels = np.asarray(image, dtype=np.float64) / 257
        image = Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _image_exact(rgb: Image.Image) -> str:
    # Over the pixels as decoded here: full size for PNG/GIF/WEBP/BMP, libjpeg's reduced
    # scale for JPEG. Both are deterministic, so equal pixels in any lossless container (or a
    # JPEG with other metadata) give equal hashes.
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def _image_shrink(image: Image.Image, size: int) -> Image.Image:
    scale = size / max(image.size)
    if scale >= 1:
        return image
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _pdq(rgb: Image.Image) -> tuple[bytes, int]:
    bits, quality = pdqhash.compute(np.asarray(rgb))
    return np.packbits(bits.astype(np.uint8)).tobytes(), int(quality)


# --- Texts ----------------------------------------------------------------------------------

SHINGLE = 4  # characters per shingle of the normalised text
MINHASH_PERMUTATIONS = 128
LSH_BANDS, LSH_ROWS = 32, 4  # 32 x 4 = 128: every permutation is in one band
# The estimated Jaccard similarity from which two texts are near-duplicates. On the quality
# set, edited copies scored >= 0.55 (one word changed in a short text is the hardest) and
# benign texts on the same topics <= 0.24; recall stayed 1.0 from 0.3 to 0.5.
TEXT_THRESHOLD = 0.5

# Letters from other scripts that look like Latin ones. Case matters: an upper-case Greek Nu
# looks like N, a lower-case one like v; the table is applied before case folding.
CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "А": "a", "а": "a", "В": "b", "в": "b", "Е": "e", "е": "e", "Ё": "e", "ё": "e",
        "Н": "h", "н": "h", "І": "i", "і": "i", "Ї": "i", "ї": "i", "Ј": "j",
        "ј": "j", "К": "k", "к": "k", "М": "m", "м": "m", "О": "o", "о": "o", "Р": "p",
        "р": "p", "С": "c", "с": "c", "Т": "t", "т": "t", "У": "y", "у": "y", "Х": "x",
        "х": "x", "Ѕ": "s", "ѕ": "s", "Ԁ": "d", "ԁ": "d", "Ԛ": "q", "ԛ": "q", "Ԝ": "w",
        "ԝ": "w", "Ӏ": "l", "ӏ": "l", "Һ": "h", "һ": "h", "Ь": "b", "ь": "b", "п": "n",
        "г": "r", "ո": "n", "ս": "u", "օ": "o",  # the last three: Armenian
        # Greek
        "Α": "a", "α": "a", "Β": "b", "β": "b", "Ε": "e", "ε": "e", "Ζ": "z", "Η": "h",
        "η": "n", "Ι": "i", "ι": "i", "Κ": "k", "κ": "k", "Μ": "m", "Ν": "n", "ν": "v",
        "Ο": "o", "ο": "o", "Ρ": "p", "ρ": "p", "Τ": "t", "τ": "t", "Υ": "y", "υ": "u",
        "Χ": "x", "χ": "x", "ω": "w", "Ϲ": "c", "ϲ": "c",
        # Latin look-alikes
        "ı": "i", "ȷ": "j", "ɡ": "g", "ɑ": "a",
    }
)  # fmt: skip
# Digits and symbols used as letters. "1", "l" and "i" all become "i", so "fo11ow" and
# "fol1ow" both meet "follow". Real digits change too ("555" -> "sss"), consistently on
# both sides, so phone numbers still compare digit by digit.
LEETSPEAK = str.maketrans(
    {"0": "o", "1": "i", "l": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)


@dataclass(frozen=True)
class TextFingerprint:
    normalized: str
    exact: str  # sha256 hex of `normalized`
    minhash: tuple[int, ...]  # MINHASH_PERMUTATIONS unsigned 32-bit values; () if no text


def text_normalize(text: str) -> str:
    """Only letters and digits, with full-width forms, accents, case, look-alike letters from
    other scripts and leetspeak folded. Spaces and punctuation go too, so word boundaries
    (which evaders move at will: "c h e a p") play no part.

    A text with no letter or digit (only emoji, say) keeps its symbols instead, so two
    different emoji-only texts do not become the same empty text.
    """
    # Look-alikes before NFKC too: it turns some (the lunate sigma "ϲ") into other letters.
    folded = unicodedata.normalize("NFKC", text.translate(CONFUSABLES))
    folded = folded.translate(CONFUSABLES).casefold()
    # NFKD splits accented letters so the accents (combining marks) can be dropped.
    bare = "".join(
        ch
        for ch in unicodedata.normalize("NFKD", folded)
        if not unicodedata.category(ch).startswith("M")
    ).translate(LEETSPEAK)
    kept = "".join(ch for ch in bare if unicodedata.category(ch)[0] in "LN")
    if kept:
        return kept
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "ZCM")


def text_fingerprint(text: str) -> TextFingerprint:
    normalized = text_normalize(text)
    exact = hashlib.sha256(normalized.encode()).hexdigest()
    return TextFingerprint(normalized, exact, _minhash(normalized))


def text_similarity(a: TextFingerprint, b: TextFingerprint) -> float:
    """Estimated Jaccard similarity of the two texts' shingle sets (1.0 if equal)."""
    if a.exact == b.exact:
        return 1.0
    if not a.minhash or not b.minhash:
        return 0.0
    return float(np.count_nonzero(np.array(a.minhash) == np.array(b.minhash))) / len(a.minhash)


def minhash_pack(minhash: tuple[int, ...]) -> bytes:
    """A signature as stored (TEXT_MINHASH rows): little-endian uint32s, 512 bytes."""
    return np.array(minhash, dtype="<u4").tobytes()


def minhash_similarities(query: bytes, stored: list[bytes]) -> np.ndarray:
    """`text_similarity` of one packed signature against many, in one vectorised pass."""
    if not stored:
        return np.zeros(0)
    theirs = np.frombuffer(b"".join(stored), dtype="<u4").reshape(len(stored), -1)
    mine = np.frombuffer(query, dtype="<u4")
    return np.count_nonzero(theirs == mine, axis=1) / len(mine)


def text_band_keys(fp: TextFingerprint) -> list[int]:
    """LSH keys (signed 64-bit, for a bigint column): texts sharing one are candidates.

    Two texts of similarity s share at least one key with probability 1 - (1 - s^4)^32:
    0.87 at 0.5, 0.99 at 0.6, 0.9998 at 0.7. Exact duplicates are found by `exact`.
    """
    if not fp.minhash:
        return []
    values = np.array(fp.minhash, dtype="<u4")
    keys = []
    for band in range(LSH_BANDS):
        rows = values[band * LSH_ROWS : (band + 1) * LSH_ROWS].tobytes()
        digest = hashlib.blake2b(rows, digest_size=8, person=f"band{band}".encode())
        keys.append(int.from_bytes(digest.digest(), "big", signed=True))
    return keys


def _permutations() -> tuple[np.ndarray, np.ndarray]:
    # From SHA-256 rather than a numpy generator, whose streams may change between releases:
    # stored signatures must stay comparable forever.
    words = [
        int.from_bytes(hashlib.sha256(f"minhash:{i}".encode()).digest()[:16], "big")
        for i in range(MINHASH_PERMUTATIONS)
    ]
    multipliers = np.array([(w >> 64) | 1 for w in words], dtype=np.uint64)  # odd
    offsets = np.array([w & (2**64 - 1) for w in words], dtype=np.uint64)
    return multipliers, offsets


_MULTIPLIERS, _OFFSETS = _permutations()


def _minhash(normalized: str) -> tuple[int, ...]:
    if not normalized:
        return ()
    points = np.frombuffer(normalized.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    count = max(1, len(points) - SHINGLE + 1)
    shingles = points[:count].copy()
    for offset in range(1, min(SHINGLE, len(points))):
        shingles = shingles * np.uint64(0x100000001B3) + points[offset : offset + count]
    shingles = _mix64(shingles)
    # One multiply-shift hash per permutation; numpy's uint64 arithmetic wraps modulo 2**64.
    hashed = (shingles[:, None] * _MULTIPLIERS + _OFFSETS) >> np.uint64(32)
    return tuple(int(v) for v in hashed.min(axis=0))


def _mix64(x: np.ndarray) -> np.ndarray:
    # The splitmix64 finaliser: spreads every input bit over the whole word.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


# --- Videos ---------------------------------------------------------------------------------

VIDEO_MAX_FRAMES = 60  # one a second: the first minute
VIDEO_SHARE = 0.5


@dataclass(frozen=True)
class VideoFingerprint:
    file_hash: str  # sha256 hex of the file
    frames: tuple[bytes, ...]  # PDQ of the frame at (or just after) each whole second
    qualities: tuple[int, ...]


def video_fingerprint(path: str) -> VideoFingerprint:
    """Fingerprint of the video at `path`; raises media.MediaError if it does not decode."""
    try:
        with media.video_open(path) as container:
            hashes = _video_frame_hashes(container)
    except media.MediaError:
        raise
    except Exception as exc:  # PyAV/FFmpeg raise many exception types on malformed input
        raise media.MediaError("The video is corrupt or truncated and cannot be decoded.") from exc
    return VideoFingerprint(
        file_hash=_file_sha256(path),
        frames=tuple(pdq for pdq, _ in hashes),
        qualities=tuple(quality for _, quality in hashes),
    )


def video_similar(
    a: VideoFingerprint,
    b: VideoFingerprint,
    distance: int = PDQ_DISTANCE,
    share: float = VIDEO_SHARE,
) -> tuple[bool, float]:
    """(matched, share of `a`'s sampled frames that have a near-duplicate among `b`'s).

    Only `a`'s frames of PDQ quality >= PDQ_MIN_QUALITY count, when it has any: black or
    faded frames (quality 0, all alike) would otherwise make any two videos with a dark
    intro look half the same.
    """
    if a.file_hash == b.file_hash:
        return True, 1.0
    mine = list(zip(a.frames, a.qualities, strict=True))
    mine = [(f, q) for f, q in mine if q >= PDQ_MIN_QUALITY] or mine
    theirs = list(zip(b.frames, b.qualities, strict=True))
    if not mine or not theirs:
        return False, 0.0
    found = sum(
        any(
            hamming(frame, other) <= pdq_threshold(min(q, other_q), distance)
            for other, other_q in theirs
        )
        for frame, q in mine
    )
    ratio = found / len(mine)
    return ratio >= share, ratio


def _video_frame_hashes(container) -> list[tuple[bytes, int]]:
    if not container.streams.video:
        raise media.MediaError("The file has no video stream.")
    stream = container.streams.video[0]
    _image_check_pixels(stream.codec_context.width or 1, stream.codec_context.height or 1)
    stream.thread_type = "AUTO"
    hashes: list[tuple[bytes, int]] = []
    next_second = 0
    for index, frame in enumerate(container.decode(stream)):
        seconds = frame.time if frame.time is not None else index / float(stream.average_rate or 1)
        if seconds < next_second:
            continue
        next_second = math.floor(seconds) + 1
        _image_check_pixels(frame.width, frame.height)
        scale = min(1.0, HASH_SIZE / max(frame.width, frame.height))
        rgb = frame.reformat(
            width=max(1, math.floor(frame.width * scale)),
            height=max(1, math.floor(frame.height * scale)),
            format="rgb24",
        ).to_image()
        hashes.append(_pdq(rgb))
        if len(hashes) == VIDEO_MAX_FRAMES:
            break
    if not hashes:
        raise media.MediaError("The video has no decodable frames.")
    return hashes


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
