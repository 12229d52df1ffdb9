"""Fingerprints that judge whether two images, texts or videos are near-duplicates.

Plain functions over bytes, strings and paths; `samples.matching` stores and indexes what
they return. The thresholds below were measured on the generated quality set
(`samples/quality/dataset.py`, scored by `benchmarks/quality.py`).

Images: PDQ (Meta's 256-bit perceptual hash) of the picture and of its 7 other dihedral
forms, so a flipped or rotated copy matches; an 8x8 colour thumbnail, which confirms pairs a
little beyond the PDQ distance; and for flat pictures, whose PDQ bits are noise (a blank, a
band, a soft gradient), layout codes computed from that thumbnail, searched like PDQ and
confirmed by it too. And extra PDQ hashes of cropped forms (image_crops: the picture trimmed
of uniform borders, letterbox bars and caption bars, its central 90% and 80%, the latter
turned a little), so a cropped, bordered or captioned copy matches: a query's forms are
compared with the stored picture's (crop_comparison). And crop-tolerant codes (samples.crophash),
which catch the cropped, bordered, captioned and turned copies those forms miss, confirmed by
aligning thumbnails (crophash_comparison). Texts: a normalised form that undoes the usual
filter evasions, its SHA-256, and a MinHash signature over character shingles with LSH
band keys for the database. Videos: PDQ of one frame a second.

Changing the hashing (sizes, shingles, seeds, the normalisation tables) changes every stored
fingerprint: recompute them all, or old and new ones will no longer match. (Layout codes are
the exception: samples.matching computes them from the stored thumbnails as it indexes them.)
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
from samples import crophash

# --- Images ---------------------------------------------------------------------------------

PDQ_DISTANCE = 31  # Meta's recommended match distance for PDQ (out of 256 bits)
# Hashes under this PDQ quality come from flat or simple pictures (little gradient), whose
# bits are close to noise; on PDQ alone they match only within LOW_QUALITY_DISTANCE (measured
# with the low-quality sweep of benchmarks/quality.py, seeds 0-3: no unrelated pair that close,
# the closest at 18-20). Further copies are found by their thumbnails (below).
PDQ_MIN_QUALITY = 50
LOW_QUALITY_DISTANCE = 16
# Up to this far beyond the distance, a pair matches if its thumbnails agree (THUMB_DISTANCE):
# a corner watermark moves text-heavy screenshots and avatars to 32-40 bits. On the quality
# set (seeds 0-3, 1,600 watermarked copies, 640,000 unrelated pairs of which PDQ itself
# matches 45), margins 0/5/9/13/17 gave watermark recall 0.988/0.996/0.999/1.000/1.000 and
# 4/6/8/11/22 more false positives (same-template ads and avatars).
PDQ_CONFIRM_MARGIN = 9
# A flat picture: PDQ quality under PDQ_MIN_QUALITY, or more than FLAT_SHARE of PDQ's 256 DCT
# coefficients within FLAT_MARGIN of their median, whose bits are then noise (a band, a blank
# or symmetric picture: quality up to 100, yet copies 40-130 bits apart). The second flags 8 of
# the 19 high-quality sources of the quality set (seeds 0-3) whose copies PDQ missed, and 1 of
# the 1,388 others. Flat pictures are also found by layout codes (LAYOUT_DISTANCE).
FLAT_MARGIN, FLAT_SHARE = 1.0, 0.2
# The thumbnail (THUMB_SIZE x THUMB_SIZE cells, RGB) that confirms a pair: the mean difference
# per cell (grey levels) after the best brightness and contrast change of up to THUMB_GAIN
# either way, without the THUMB_OUTLIERS worst cells (a corner watermark covers up to 3;
# ignoring 10 let 8 times as many unrelated pairs within 2.0). The thumbnail sweep of
# benchmarks/quality.py (seeds 0-3): lowest recall per seed 0.985-0.993 at 2.0, 0.988-0.998 at
# 2.5, 0.990-0.998 at 3.0, with 51, 53 and 60 false positives. Brightened flat pictures are
# the misses: clipping changes cells that mix two colours (a band's edges).
THUMB_SIZE = 8
THUMB_DISTANCE = 2.5
THUMB_GAIN = 1.4
THUMB_OUTLIERS = 4
# A stored flat picture is a candidate for the thumbnail check when one of the query's layout
# probes is within LAYOUT_DISTANCE of one of its layout codes (see _layout_parts). Each side
# also tries the other brightened by LAYOUT_BRIGHTER, since brightening clips light colours
# and moves the code most. On seeds 0-3, both ways round: 4 of the 4,709 flat copy pairs whose
# thumbnails agree were not candidates, and 0.6% of the unrelated flat pictures were (without
# the brightened codes, at 16: 48 and 0.75%).
LAYOUT_DISTANCE = 12
LAYOUT_BRIGHTER = 1.3
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
# The same moves on a (rows, columns, channels) array, to turn a thumbnail ("pdq": as it is).
THUMB_FORMS = {
    "pdq": lambda a: a,
    "flip-h": lambda a: a[:, ::-1],
    "flip-v": lambda a: a[::-1],
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "transpose": lambda a: a.transpose(1, 0, 2),
    "transverse": lambda a: np.rot90(a, 2).transpose(1, 0, 2),
}
_INVERSE_FORMS = {"rot90": "rot270", "rot270": "rot90"}  # the others undo themselves

# Cropped forms (issue 8). PDQ moves 10-60 bits when one side of a picture is cut by 1-2%, so
# borders and bars are trimmed off at the pixel and the trimmed picture is hashed too. A
# picture keeps all CROP_FORMS; a query's CROP_QUERY_FORMS are compared with the stored
# picture's CROP_STORED_FORMS (the index holds only those), and crop forms meet only each
# other. Each is hashed from the HASH_SIZE copy ("whole" is the picture's own PDQ): forms hashed
# from a 128-pixel copy, which PDQ's 64x64 would seem to allow, matched far fewer copies.
# Central crops (95% to 80%, some turned 2 or 5 degrees) were kept too until crophash
# (samples.crophash) found what they found and more: without them the matcher lost at most 2.5
# points on one hard edit (crop-10%, seed 3) and fell from 0.120% to 0.100% false positives on
# unrelated pictures, for 6.5 ms less per image and ~8 fewer codes in the index (their names
# stay in samples.matching, for decisions that recorded them).
CROP_FORMS = ("whole", "trim", "btrim", "soft")
CROP_QUERY_FORMS = CROP_FORMS
CROP_STORED_FORMS = CROP_FORMS
# A pair of crop forms matches within CROP_DISTANCE bits (moved with the policy's distance from
# PDQ_DISTANCE), or within CROP_LOW_QUALITY_DISTANCE if either has a PDQ quality under
# CROP_MIN_QUALITY (a flat form's bits are close to noise; a crop has less gradient than its
# picture, so the floor is lower than PDQ_MIN_QUALITY). At most 32: the multi-index
# (samples.index) is exact to 32. Two blurred-border trims are not compared: unrelated
# pictures' soft forms met most often (32 of 53 false positives, seed 0).
CROP_DISTANCE = 32
CROP_LOW_QUALITY_DISTANCE = 16
CROP_MIN_QUALITY = 30
_CROP_UNPAIRED = {("soft", "soft")}
# Trimming, on the HASH_SIZE copy. A border row (or column): BORDER_SHARE of its pixels within
# BORDER_TOLERANCE grey levels (every channel) of the median colour of the outermost row (JPEG
# noise and ringing stay within it). A caption bar: the rows from the top or bottom edge of
# which at least CAPTION_SHARE are of the edge's colour (the rest is the text), at most
# CAPTION_MAX of the height. A trim leaves at least TRIM_KEEP of the width and height, or
# none is made on that axis (a blank or banded picture is not trimmed away).
BORDER_TOLERANCE = 24
BORDER_SHARE = 0.98
CAPTION_SHARE = 0.3
CAPTION_MAX = 0.26
TRIM_KEEP = 0.25
TRIM_REACH = 0.45  # of the length at most from each edge (a 16:9 picture in a 9:16 canvas: 0.34)
# A border or bar ends in an edge: its last line and the next differ by at least EDGE_STEP grey
# levels on average (the largest channel of each pixel).
EDGE_STEP = 12
# Blurred borders (the "blurred background" of reposting apps: the picture centred on a blurred
# enlarged copy of itself), trimmed off for the "soft" form: margins as wide on opposite sides
# (to a line), at most SOFT_MAX of the length each, smooth (at most SOFT_ROUGH_SHARE of the
# luma steps along and across each line over SOFT_ROUGH), each ending in an edge of SOFT_STEP
# grey levels on average (a blurred background is close in colour to the picture's edge).
SOFT_STEP = 3.0
SOFT_ROUGH, SOFT_ROUGH_SHARE = 16.0, 0.02
SOFT_MAX = 0.42


@dataclass(frozen=True)
class ImageFingerprint:
    exact: str  # sha256 hex of the decoded RGB pixels and their size (see _image_exact)
    pdq: bytes  # 32 bytes
    quality: int  # PDQ quality, 0-100
    variants: tuple[bytes, ...]  # PDQ of the forms in VARIANT_FORMS, in that order
    thumb: bytes  # THUMB_SIZE x THUMB_SIZE RGB cells, row by row (192 bytes)
    flat: bool  # PDQ's bits are unreliable: also matched by layout (see FLAT_SHARE)
    # (form, PDQ, quality) of the CROP_FORMS, in that order, without repeated hashes (a
    # picture without borders is its own trimmed form: only "whole" is kept).
    crops: tuple[tuple[str, bytes, int], ...] = ()
    # What the picture is stored and indexed by, and what it searches with as a query (the
    # query side keeps its grey copy: the confirm aligns stored thumbnails in it).
    crop_stored: crophash.CropStored | None = None
    crop_query: tuple[crophash.CropPicture, crophash.CropQuery] | None = None


def image_fingerprint(data: bytes, *, query: bool = True) -> ImageFingerprint:
    """Fingerprint of an image file; raises media.MediaError if it is not an acceptable image.

    Only the first frame of an animation is fingerprinted. `query=False` leaves out what only a
    search from it needs (crop_query: its picture and query codes), for a fingerprint that is
    only stored.
    """
    rgb = _image_decode(data)
    exact = _image_exact(rgb)
    small = _image_shrink(rgb, HASH_SIZE)
    pdq, quality, fragile = _pdq_checked(small)
    variants = tuple(_pdq(small.transpose(method))[0] for method in VARIANT_FORMS.values())
    thumb = small.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX).tobytes()
    flat = quality < PDQ_MIN_QUALITY or fragile
    crops = image_crops(small, (pdq, quality), rgb)
    picture = crophash.crop_picture(small)
    return ImageFingerprint(
        exact,
        pdq,
        quality,
        variants,
        thumb,
        flat,
        crops,
        crophash.stored_codes(picture),
        (picture, crophash.query_codes(picture)) if query else None,
    )


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
    """(matched, best PDQ distance, form): form is "exact", "pdq", the VARIANT_FORMS name of
    the transformation of `b` that looks like `a` ("rot90": `a` is `b` turned 90° left),
    "layout" for a flat `b` found by its layout code, "<a's crop form>~<b's crop form>"
    for a pair of cropped forms (crop_comparison), or "crophash:<b's crophash form>" for a
    copy confirmed by crophash_comparison; the distance is then that of the pair's forms or
    codes.

    `b` is the stored side: samples.matching searches the layout codes of stored flat
    pictures only, with a query's CROP_QUERY_FORMS only, and b's crophash stored codes with
    a's query codes. PDQ treats both sides alike.
    """
    best, form, thumbs = image_comparison(a, b, distance)
    if thumbs is None:
        matched = best <= pdq_threshold(min(a.quality, b.quality), distance)
    else:
        matched = thumbs <= THUMB_DISTANCE
    if matched:
        return matched, best, form
    if crop := crop_comparison(a.crops, b.crops, distance):
        return True, *crop
    if found := crophash_comparison(a, b):
        return True, found.bits, f"crophash:{found.form}"
    return matched, best, form


def image_crop_query(
    data: bytes, *, holds_crops: bool = False
) -> tuple[crophash.CropPicture, crophash.CropQuery]:
    """An image file's crophash query (ImageFingerprint.crop_query) alone: a search from a
    stored result or sample, whose rows do not keep it; `holds_crops` as crophash.query_codes.
    Raises media.MediaError as image_fingerprint does."""
    picture = crophash.crop_picture(_image_shrink(_image_decode(data), HASH_SIZE))
    return picture, crophash.query_codes(picture, holds_crops=holds_crops)


def crophash_comparison(
    query: ImageFingerprint, stored: ImageFingerprint
) -> crophash.CropMatch | None:
    """crophash.crop_match of the query's codes against the stored picture's (a CropMatch), or
    None, also when either fingerprint has no crophash part (made before it existed)."""
    if query.crop_query is None or stored.crop_stored is None:
        return None
    return crophash.crop_match(*query.crop_query, stored.crop_stored)


def crop_comparison(
    query: tuple[tuple[str, bytes, int], ...],
    stored: tuple[tuple[str, bytes, int], ...],
    distance: int = PDQ_DISTANCE,
) -> tuple[int, str] | None:
    """(bits, "<query form>~<stored form>") of the nearest matching pair of crop forms, the
    query's CROP_QUERY_FORMS against the stored CROP_STORED_FORMS (see CROP_DISTANCE); None
    if there is none."""
    limit = min(CROP_DISTANCE, CROP_DISTANCE + distance - PDQ_DISTANCE)
    low = min(limit, CROP_LOW_QUALITY_DISTANCE)
    best = None
    for form, code, quality in query:
        if form not in CROP_QUERY_FORMS:
            continue
        for their_form, their_code, their_quality in stored:
            if their_form not in CROP_STORED_FORMS or (form, their_form) in _CROP_UNPAIRED:
                continue
            bits = hamming(code, their_code)
            informative = min(quality, their_quality) >= CROP_MIN_QUALITY
            if bits <= (limit if informative else low) and (not best or bits < best[0]):
                best = (bits, f"{form}~{their_form}")
    return best


def image_crops(
    small: Image.Image, whole: tuple[bytes, int], rgb: Image.Image | None = None
) -> tuple[tuple[str, bytes, int], ...]:
    """(form, PDQ, quality) of the CROP_FORMS of a picture already shrunk to HASH_SIZE, whose
    own (PDQ, quality) is `whole`; each hash once (a form whose hash an earlier form has is
    left out). The trimmed forms are cut from `rgb`, the picture as decoded, if given: a
    letterboxed picture may be half the canvas, too few pixels of `small` for a close hash."""
    pixels = np.asarray(small)
    borders, trimmed = _trim_boxes(pixels)
    full = (0, 0, *small.size)
    boxes = {"trim": trimmed, "btrim": borders, "soft": _soft_trimmed(pixels, borders)}
    crops, seen = [("whole", *whole)], {whole[0]}
    for form in CROP_FORMS[1:]:
        if boxes[form] == full:
            continue
        code, quality = _pdq(_trimmed_form(small, boxes[form], rgb))
        if code not in seen:
            seen.add(code)
            crops.append((form, code, quality))
    return tuple(crops)


def _trimmed_form(
    small: Image.Image, box: tuple[int, int, int, int], rgb: Image.Image | None
) -> Image.Image:
    if rgb is None or rgb.size == small.size:
        return small.crop(box)
    scale = rgb.width / small.width
    cut = rgb.crop(tuple(round(v * scale) for v in box))
    return _image_shrink(cut, HASH_SIZE)


def _trim_boxes(pixels: np.ndarray) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """(left, top, right, bottom) of the picture without its uniform borders, and without its
    borders and caption bars (see BORDER_TOLERANCE)."""
    height, width = pixels.shape[:2]
    rows = pixels.astype(np.int16)
    columns = rows.transpose(1, 0, 2)
    top, top_caption = _edge_runs(rows, height)
    bottom, bottom_caption = _edge_runs(rows[::-1], height)
    left, _ = _edge_runs(columns, width)
    right, _ = _edge_runs(columns[::-1], width)
    if left + right > (1 - TRIM_KEEP) * width:
        left = right = 0
    if top + bottom > (1 - TRIM_KEEP) * height:
        top = bottom = top_caption = bottom_caption = 0
    if top_caption + bottom_caption > (1 - TRIM_KEEP) * height:
        top_caption = bottom_caption = 0
    borders = (left, top, width - right, height - bottom)
    trimmed = (left, max(top, top_caption), width - right, height - max(bottom, bottom_caption))
    return borders, trimmed


def _soft_trimmed(pixels: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, ...]:
    """`box` moved in past a blurred border on each axis that has one (see SOFT_STEP) and no
    uniform border or bar, but for one as wide as the blurred border (an even blurred margin,
    white or black, passes for one)."""
    height, width = pixels.shape[:2]
    left, top, right, bottom = box
    luma = pixels.astype(np.float32) @ _LUMA
    # Each axis within the other's margins: a picture narrower than its canvas makes a weak
    # edge across the whole width, a strong one across its own; so across once more.
    for axis in ("across", "down", "across"):
        if axis == "across" and (margin := _soft_margin(luma[top:bottom].T)):
            if _soft_fits(margin, left, width - right):
                left, right = margin, width - margin
        elif axis == "down" and (margin := _soft_margin(luma[:, left:right])):  # noqa: SIM102
            if _soft_fits(margin, top, height - bottom):
                top, bottom = margin, height - margin
    return left, top, right, bottom


def _soft_fits(margin: int, *trims: int) -> bool:
    return all(trim == 0 or abs(trim - margin) <= 2 for trim in trims)


def _soft_margin(lines: np.ndarray) -> int:
    """How many lines a blurred border takes on each side of `lines` (rows of luma), 0 if none
    (see SOFT_STEP)."""
    n = len(lines)
    k = np.arange(4, int(n * SOFT_MAX))
    if len(k) == 0:
        return 0
    steps = np.abs(np.diff(lines, axis=0)).mean(axis=1)  # steps[i]: between lines i and i + 1
    # The share of pixels that step by more than SOFT_ROUGH to the next one along each line, or
    # across to the next line: rough[i] for line i and on to line i + 1.
    along = (np.abs(np.diff(lines, axis=1)) > SOFT_ROUGH).mean(axis=1)
    rough = np.maximum(along[:-1], (np.abs(np.diff(lines, axis=0)) > SOFT_ROUGH).mean(axis=1))
    # The far side's edge may sit a line off (the picture centred to the pixel).
    far = np.max([steps[n - k - 2], steps[n - k - 1], steps[np.minimum(n - k, n - 2)]], axis=0)
    edge = np.minimum(steps[k - 1], far)
    # Short of the edge (resampling blurs it over two lines, the far one a line off too).
    near_rough = np.maximum.accumulate(rough)[k - 3]
    far_rough = np.maximum.accumulate(rough[::-1])[k - 4]
    ok = (edge >= SOFT_STEP) & (np.maximum(near_rough, far_rough) <= SOFT_ROUGH_SHARE)
    if not ok.any():
        return 0
    return int(k[ok][np.argmax(edge[ok])])


def _edge_runs(lines: np.ndarray, length: int) -> tuple[int, int]:
    """How many lines from the start of `lines` (rows of pixels, the edge first) are a border,
    and how many make a caption bar (0 if more than CAPTION_MAX of `length`)."""
    reach = lines[: max(2, round(length * TRIM_REACH))]
    colour = np.median(lines[0], axis=0).astype(np.int16)
    share = (np.abs(reach - colour) <= BORDER_TOLERANCE).all(axis=2).mean(axis=1)
    uniform = share >= BORDER_SHARE
    border = _leading(uniform)
    caption = _leading(share >= CAPTION_SHARE)
    # A caption's text is set off from the picture by a few lines of its bar's colour (the
    # last one may be blended with the picture's first by resizing).
    padded = caption >= 2 and bool(uniform[max(0, caption - 3) : caption - 1].any())
    if not (padded and caption <= CAPTION_MAX * length and _edge_after(reach, caption)):
        caption = 0
    return (border if _edge_after(reach, border) else 0), caption


def _edge_after(lines: np.ndarray, run: int) -> bool:
    """Whether the picture changes sharply after the first `run` lines: a border or bar ends in
    an edge, a smooth gradient (a sky) drifts out of BORDER_TOLERANCE a line at a time."""
    if not 0 < run < len(lines):
        return False
    return float(np.abs(lines[run] - lines[run - 1]).max(axis=1).mean()) >= EDGE_STEP


def _leading(flags: np.ndarray) -> int:
    """How many of `flags` are true before the first false one."""
    return len(flags) if flags.all() else int(np.argmin(flags))


def image_comparison(
    a: ImageFingerprint, b: ImageFingerprint, distance: int = PDQ_DISTANCE
) -> tuple[int, str, float | None]:
    """(best PDQ distance, form, thumbnail distance) as image_similar judges them; the
    thumbnail distance is None where PDQ alone decides."""
    if a.exact == b.exact:
        return 0, "exact", None
    best, form = hamming(a.pdq, b.pdq), "pdq"
    for name, variant in zip(VARIANT_FORMS, b.variants, strict=True):
        d = hamming(a.pdq, variant)
        if d < best:
            best, form = d, name
    # The less informative of the two hashes decides how close is close enough.
    if best <= pdq_threshold(min(a.quality, b.quality), distance):
        return best, form, None
    # Further than that, the thumbnails decide: for a near PDQ hash in any form (a sample's
    # PDQ search does not tell which of its forms was near), for a flat `b` in the forms its
    # layout code was found in.
    near = best <= distance + PDQ_CONFIRM_MARGIN
    forms = set(THUMB_FORMS) if near else set()
    if b.flat:
        codes = [code for _, code in layout_codes(b.thumb)]
        forms |= {
            name
            for name, probe in layout_probes(a.thumb)
            if any(hamming(probe, code) <= LAYOUT_DISTANCE for code in codes)
        }
    if not forms:
        return best, form, None
    thumbs = thumb_distances(a.thumb, [(b.thumb, name) for name in sorted(forms)])
    return best, form if near else "layout", float(thumbs.min())


def layout_codes(thumb: bytes) -> list[tuple[str, bytes]]:
    """(form, code) of what a stored flat picture is searched by: its layout code ("colour"),
    the same with the colour bits replaced by a pattern no colour gives ("luma", which a grey
    query meets), and both of the picture brightened by LAYOUT_BRIGHTER ("colour+", "luma+")."""
    codes = []
    for cells, suffix in _layout_versions(thumb):
        luma, colour = _layout_parts(cells)
        codes += [
            (f"colour{suffix}", _pack(luma, colour)),
            (f"luma{suffix}", _pack(luma, _LAYOUT_GREY)),
        ]
    return codes


def layout_probes(thumb: bytes) -> list[tuple[str, bytes]]:
    """(form, code) a picture searches the stored layout codes with: as it is and brightened by
    LAYOUT_BRIGHTER, in its 8 dihedral forms; the form is that of the stored picture turned
    to look like this one (as in image_similar).

    A grey picture (a grayscale copy) searches by luma alone; a coloured one by its colour and
    as if it were grey (to meet grayscale copies among the stored pictures).
    """
    grey = _is_grey(_thumb_array(thumb))
    probes = []
    for cells, _ in _layout_versions(thumb):
        spread, level, quadrants = _layout_features(cells)
        for name, turn in THUMB_FORMS.items():
            # This picture turned by `name` looks like the stored one: the stored one turned back.
            back = _INVERSE_FORMS.get(name, name)
            luma, colour = _layout_bits(turn(spread), level, turn(quadrants))
            if grey:
                probes.append((back, _pack(luma, _LAYOUT_GREY)))
            else:
                probes += [(back, _pack(luma, colour)), (back, _pack(luma, _LAYOUT_NEUTRAL))]
    return probes


def thumb_distances(query: bytes, stored: list[tuple[bytes, str]]) -> np.ndarray:
    """How far each stored thumbnail, turned by its form (a VARIANT_FORMS name or "pdq"), is
    from the query's, in grey levels per cell (see THUMB_DISTANCE), after the best brightness
    and contrast change of either to look like the other.

    Compared by luma alone when one of the two is grey, as a grayscale copy is: a grey picture
    then also passes for a copy of another-coloured one with the same layout and lightness.
    """
    if not stored:
        return np.zeros(0)
    mine = _thumb_array(query)
    theirs = [_thumb_array(thumb) for thumb, _ in stored]
    turned = {form: THUMB_FORMS[_INVERSE_FORMS.get(form, form)](mine) for _, form in stored}
    # Both ways: the query as a changed stored picture, and the other way round.
    targets = np.stack([mine] * len(stored) + theirs)
    sources = np.stack(
        [THUMB_FORMS[form](cells) for cells, (_, form) in zip(theirs, stored, strict=True)]
        + [turned[form] for _, form in stored]
    )
    grey = _is_grey(mine) | _grey(np.stack(theirs))
    cells = THUMB_SIZE * THUMB_SIZE
    residuals = _thumb_residuals(
        targets.reshape(-1, cells, 3), sources.reshape(-1, cells, 3), np.tile(grey, 2)
    )
    return residuals.reshape(2, -1).min(axis=0)


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


def _pdq_checked(rgb: Image.Image) -> tuple[bytes, int, bool]:
    """PDQ of the picture, its quality, and whether too many of its bits are noise."""
    coefficients, quality = pdqhash.compute_float(np.asarray(rgb))
    median = np.median(coefficients)
    # PDQ sets the bits of the coefficients above their median: the bits compute() gives (the
    # same on all 22,400 pictures of the quality set, seeds 0-3).
    bits = np.packbits(coefficients > median).tobytes()
    fragile = np.mean(np.abs(coefficients - median) < FLAT_MARGIN) > FLAT_SHARE
    return bits, int(quality), bool(fragile)


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHROMA = np.array(
    [[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)  # Cb, Cr
GREY_CHROMA = 2.0  # mean chroma of a grey thumbnail at most (a grayscale JPEG has 0)


def _thumb_array(thumb: bytes) -> np.ndarray:
    cells = np.frombuffer(thumb, dtype=np.uint8).reshape(THUMB_SIZE, THUMB_SIZE, 3)
    return cells.astype(np.float32)


def _grey(cells: np.ndarray) -> np.ndarray:
    """Whether each of a stack of thumbnails is grey (GREY_CHROMA)."""
    chroma = np.linalg.norm(cells @ _CHROMA.T, axis=-1)
    return chroma.reshape(len(cells), -1).mean(axis=1) < GREY_CHROMA


def _is_grey(cells: np.ndarray) -> bool:
    return bool(_grey(cells[None])[0])


def _thumb_residuals(targets: np.ndarray, sources: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """Per pair of (cells, 3) arrays, the mean cell difference of the target from the source
    changed by clip(k * (x - pivot) + pivot): a gain k within THUMB_GAIN either way and a pivot
    from black (brightness) to the source's mean luma (contrast); the THUMB_OUTLIERS worst
    cells left out."""
    # A grey pair is compared by luma, copied into the three channels.
    grey = grey[:, None, None]
    targets = np.where(grey, (targets @ _LUMA)[..., None], targets)
    sources = np.where(grey, (sources @ _LUMA)[..., None], sources)
    # Axes: pivot (3), pair, cell, channel.
    shares = np.array([0.0, 0.5, 1.0], dtype=np.float32)[:, None, None, None]
    pivot = shares * (sources @ _LUMA).mean(axis=1)[None, :, None, None]
    x, y = sources - pivot, targets - pivot
    # The least-squares gain over the cells the target does not clip, then the extremes and 1
    # (a picture brightened until it clips, or with a watermark, may fit them better).
    unclipped = (targets > 5) & (targets < 250)
    num, den = (x * y * unclipped).sum(axis=(2, 3)), (x * x * unclipped).sum(axis=(2, 3))
    fitted = np.divide(num, den, out=np.ones_like(num), where=den > 1e-6)
    extremes = [np.full_like(fitted, gain) for gain in (THUMB_GAIN, 1 / THUMB_GAIN, 1.0)]
    gains = np.stack([fitted, *extremes])
    gains = np.clip(gains, 1 / THUMB_GAIN, THUMB_GAIN)[..., None, None]
    changed = np.clip(gains * x + pivot, 0, 255)
    cells = np.abs(targets - changed).mean(axis=-1)
    kept = cells.shape[-1] - THUMB_OUTLIERS
    cells = np.partition(cells, kept - 1, axis=-1)[..., :kept]
    return cells.mean(axis=-1).min(axis=(0, 1))


# The layout code of a flat picture, from its thumbnail: where each cell's luma lies (below,
# around or above the mean, in standard deviations: 128 bits), the mean luma (16 bits) and the
# colour (Cb and Cr of the four quadrants: 112 bits). Each value is thermometer-coded (a bit
# per threshold it passes), so the Hamming distance counts the steps the values moved.
_LAYOUT_SPREAD = np.array([-0.75, 0.75])
_LAYOUT_MIN_DEVIATION = 4.0  # grey levels: a flatter picture is not stretched into noise
_LAYOUT_LEVELS = np.linspace(8, 248, 16)
_LAYOUT_COLOURS = np.linspace(-65, 65, 14)


def _thermometer(values, thresholds: np.ndarray) -> np.ndarray:
    return (np.asarray(values)[..., None] > thresholds).ravel()


_LAYOUT_NEUTRAL = _thermometer(np.zeros(8), _LAYOUT_COLOURS)  # the colour bits of grey
_LAYOUT_GREY = np.resize([True, False], _LAYOUT_NEUTRAL.size)  # ~56 bits from any colour


def _layout_parts(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The luma bits and the colour bits of a thumbnail's layout code."""
    return _layout_bits(*_layout_features(cells))


def _layout_features(cells: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """What a layout code is made of: each cell's luma spread (rows, columns, 1), the mean
    luma, and the mean chroma of the four quadrants (2, 2, Cb and Cr). A dihedral turn of the
    thumbnail turns the first and the last alike (THUMB_FORMS), so a picture's 8 forms are
    coded from one computation."""
    luma = cells @ _LUMA
    spread = (luma - luma.mean()) / max(float(luma.std()), _LAYOUT_MIN_DEVIATION)
    half = THUMB_SIZE // 2
    quadrants = (cells @ _CHROMA.T).reshape(2, half, 2, half, 2).mean(axis=(1, 3))
    return spread[..., None], float(luma.mean()), quadrants


def _layout_bits(spread: np.ndarray, level: float, quadrants: np.ndarray):
    position = np.concatenate(
        [_thermometer(spread[..., 0], _LAYOUT_SPREAD), _thermometer(level, _LAYOUT_LEVELS)]
    )
    return position, _thermometer(quadrants.transpose(2, 0, 1), _LAYOUT_COLOURS)


def _layout_versions(thumb: bytes) -> list[tuple[np.ndarray, str]]:
    # Brightening clips the light colours of a flat picture and so moves its layout code the
    # most: each side also tries the other as if brightened (the query's brightened probes meet
    # a stored brightened copy, the stored brightened codes a brightened query).
    cells = _thumb_array(thumb)
    return [(cells, ""), (np.clip(np.round(cells * LAYOUT_BRIGHTER), 0, 255), "+")]


def _pack(*bits: np.ndarray) -> bytes:
    return np.packbits(np.concatenate(bits)).tobytes()


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
