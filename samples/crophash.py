"""Crop-tolerant codes of a picture and the alignment that confirms them ("crophash", issue 8).

PDQ moves 10-60 bits when a side of a picture is cut by 1-2%, so a crop, a border, a caption
bar or a small turn defeats it. A code of only the lowest frequencies moves a few bits instead:
the stored side keeps the 63-bit low-frequency DCT code of the central CENTRE of the picture
(and of the picture trimmed of uniform borders), also turned by STORED_ANGLES; a query codes
many hypotheses of where a stored picture's central region lies in it (a grid of cuts of each
side, and the central region of each trimmed version: borders, caption bars, blurred borders).
A pair whose codes are within RADIUS bits (and colour codes within COLOUR_RADIUS) is a
candidate; `confirm` aligns the stored 32 x 32 thumbnail in the query (OpenCV ECC from the
hypothesis) and checks the correlation, the colour, the grey levels of the stored central
region where it lands (the correlation ignores brightness and contrast: a same-template
look-alike in another brightness, or on another background, passes it) and, for letterboxed
stored pictures, the content inside the bars.

Chosen in research/issue8_crophash (REPORT.md) on seeds 0-1 of the generated quality set;
benchmarks/quality.py on held-out seeds 2-3: recall 0.80-0.97 per hard edit alone (blurred
borders lowest), 0.89-1.00 together with the rest of the matcher. The grey-level check
(LUMA_MAX, chosen on seeds 0-1) took crophash's own false positives (every pair it confirms,
whatever else matched it) on held-out seeds 2-5 from 0.028-0.073% to 0.013-0.030% of source x
unrelated pairs and from <= 0.065% to <= 0.026% of the other sets, one hard copy of 8,000
lost; nearly all that remain are same-template ads and avatars that differ only in small text
or a hat.

Everything works on a grey copy of GREY px (longer side). The codes of all hypotheses come from
one vectorised pass: bilinear sampling of an axis-aligned rectangle on an N x N grid is separable
(Wy @ G @ Wx.T), so the K x K lowest DCT coefficients of every rectangle are (D Wy) G (D Wx).T.

Changing the constants of the codes changes every stored code: recompute them all.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, fields

import cv2
import numpy as np
from PIL import Image

GREY = 128  # px, longer side of the grey copy
N = 32  # sampling grid of a region
K = 8  # DCT coefficients per axis: K * K - 1 = 63 AC bits
CENTRE = 0.80  # the stored region: the central 80% of each side
STORED_ANGLES = (0, -3, 3)  # degrees: a turned copy meets a turned stored code
CROP_CUTS = (0.0, 0.05, 0.10)  # a query's hypotheses: each side cut by these shares
HELD_CUTS = (0.0, -0.06, -0.12)  # or the stored picture a crop of the query (query_codes)
THUMB = 32  # grey thumbnail of a stored region, for the confirm
CHROMA = 16  # Cb/Cr thumbnail of the whole stored picture, for the colour check
MIN_SIDE = 8  # px of the grey copy: a smaller picture is coded whole, without trims

RADIUS = 10  # bits of the 63-bit code
COLOUR_RADIUS = 3  # bits of the 32-bit colour code
QUICK_MIN = 0.4  # correlation at the hypothesis itself under which no alignment is tried
CONFIRM_MIN = 0.90  # correlation of the aligned thumbnails
CHROMA_MAX = 20.0  # mean |dCb| + |dCr| of the aligned colour thumbnails (grey levels)
CONTENT_MIN = 0.8  # correlation of a letterboxed stored picture's content (content_score)
LUMA_MAX = 12.0  # grey levels: 90th percentile of the blocks' mean |dY| (_luma_distance)
LUMA_BLOCK = 4  # px of the c80 thumbnail per side of a block
TRIES = 4  # distinct hypotheses confirmed per pair at most

# Colour codes: the mean Cb and Cr of a region, thermometer-coded (a bit per threshold passed),
# so the Hamming distance counts 8-level steps.
COLOUR_STEPS = np.arange(-60, 61, 8, dtype=np.float32)  # 16 thresholds per channel

# Trims. A uniform border line: UNIFORM_SHARE of its pixels within UNIFORM_TOL grey levels of
# the edge line's median; trimmed again while that changes the rectangle (a border around a flat
# background), as on the stored side, so both come out alike.
UNIFORM_TOL, UNIFORM_SHARE, UNIFORM_ROUNDS = 8.0, 0.97, 8
MIN_CONTENT = 0.25  # a trim keeps at least this share of each side
# A caption band at the top or bottom: CAPTION_RANGE of the height, its edge row solid
# (CAPTION_SOLID within CAPTION_TOL of its median), ending at one of the CAPTION_EDGES strongest
# row-to-row changes in the range or where the rows stop having CAPTION_SHARE of its colour (an
# ad's own outlines fool the changes).
CAPTION_TOL, CAPTION_SHARE, CAPTION_SOLID = 12.0, 0.3, 0.9
CAPTION_RANGE = (0.06, 0.24)
CAPTION_EDGES = 2
# A blurred border: rows/columns from each edge with gradient energy under BLUR_ENERGY x the
# median; or outside the bounding box of the sharp pixels (|Laplacian| > SHARP_LEVEL in at least
# SHARP_SHARE of a row or column).
BLUR_ENERGY = 0.2
SHARP_LEVEL, SHARP_SHARE = 6.0, 0.03

# The greedy search that re-seeds ECC when it does not converge: steps of centre, size (shares
# of the size) and angle (degrees), halved down to REFINE_MIN of the first.
REFINE_STEPS = (0.02, 0.02, 0.02, 0.02, 1.0)
REFINE_MIN = 0.125
REFINE_ITER = 30
REFINE_FINE = 4  # rounds at THUMB after the coarse search at THUMB / 2
ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
GREY_CHROMA = 3.0  # mean |Cb| + |Cr| under this: a grey picture, whose colour is not checked
CONTENT_SHARE = 0.8  # a stored picture whose uniform trim keeps less of its area has bars
TURNED = 1.5  # degrees: an alignment turned this much is reported as "turned"
TURNED_SLIGHTLY = 0.5  # and this much when the stored picture is otherwise whole in the query
CROPPED = 0.02  # share of a side: a stored picture beyond the query by this much was cropped

Rect = tuple[float, float, float, float]  # x0, x1, y0, y1 in grey-copy pixels


def _equal(a, b) -> bool:
    # The generated __eq__ would ask a numpy array for its truth value.
    if type(a) is not type(b):
        return NotImplemented
    return all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
        for x, y in ((getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    )


def _hash(self) -> int:
    values = (getattr(self, f.name) for f in fields(self))
    return hash(tuple(v.tobytes() if isinstance(v, np.ndarray) else v for v in values))


@dataclass(frozen=True, eq=False)
class CropPicture:
    grey: np.ndarray  # (h, w) uint8, GREY px on the longer side
    chroma: np.ndarray  # (2, h, w) uint8 Cb, Cr at the same size
    trims: tuple[tuple[str, Rect], ...]  # content rectangles, the whole picture ("whole") first

    __eq__ = _equal
    __hash__ = _hash


@dataclass(frozen=True, eq=False)
class CropStored:
    forms: tuple[str, ...]  # per code: its region ("c80", "trim") and turn ("c80-3", "trim+3")
    codes: np.ndarray  # (S,) uint64, the 63-bit codes
    colours: np.ndarray  # (S,) uint32 colour codes
    thumbs: bytes  # what `confirm` needs of this picture (_thumbs_pack)

    __eq__ = _equal
    __hash__ = _hash


@dataclass(frozen=True, eq=False)
class CropQuery:
    codes: np.ndarray  # (Q,) uint64
    colours: np.ndarray  # (Q,) uint32
    rects: np.ndarray  # (Q, 4) float32: where each code puts a stored central region (Rect)

    __eq__ = _equal
    __hash__ = _hash


@dataclass(frozen=True)
class CropMatch:
    score: float  # aligned thumbnails' correlation
    form: str  # the stored form confirmed
    bits: int  # the code distance of the pair that led to it
    edit: str  # what the query looks like: "cropped", "bordered", "captioned", "turned", ...


# --- The picture ----------------------------------------------------------------------------


def crop_picture(small: Image.Image) -> CropPicture:
    """From the HASH_SIZE RGB copy of samples.fingerprints; the trims are found on it (twice
    the grey copy's precision: blurred borders are found far more often)."""
    luma = small.convert("L")
    scale = GREY / max(luma.size)
    size = luma.size
    if scale < 1:
        size = (max(1, round(luma.width * scale)), max(1, round(luma.height * scale)))
    grey = np.asarray(luma.resize(size, Image.Resampling.BOX))
    chroma = np.asarray(small.convert("YCbCr").resize(size, Image.Resampling.BOX))
    fine = np.asarray(luma, dtype=np.float32)
    fx, fy = size[0] / luma.width, size[1] / luma.height
    found = (
        _trims(fine) if min(grey.shape) >= MIN_SIDE else {"whole": (0, luma.width, 0, luma.height)}
    )
    trims = tuple(
        (name, (x0 * fx, x1 * fx, y0 * fy, y1 * fy)) for name, (x0, x1, y0, y1) in found.items()
    )
    return CropPicture(grey, np.ascontiguousarray(np.moveaxis(chroma[..., 1:], -1, 0)), trims)


_TAPS = np.array([0.25, 0.5, 0.25], np.float32)


def _smooth(g: np.ndarray) -> np.ndarray:
    """Two [1 2 1] / 4 passes, edges repeated: anti-aliasing for the N-point sampling grid."""
    g = g.astype(np.float32)
    for _ in range(2):
        g = cv2.sepFilter2D(g, -1, _TAPS, _TAPS, borderType=cv2.BORDER_REPLICATE)
    return g


def _planes(pic: CropPicture) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed grey copy and (2, h, w) smoothed Cb, Cr centred on 0."""
    chroma = np.stack([_smooth(p.astype(np.float32) - 128) for p in pic.chroma])
    return _smooth(pic.grey), chroma


# --- Codes ----------------------------------------------------------------------------------


def stored_codes(pic: CropPicture) -> CropStored:
    grey, chroma = _planes(pic)
    h, w = grey.shape
    trims = dict(pic.trims)
    regions = {"c80": _centre(trims["whole"])}
    if "trim" in trims:
        regions["trim"] = _centre(trims["trim"])
    forms, boxes, angles = [], [], []
    for region, rect in regions.items():
        for angle in STORED_ANGLES:
            forms.append(f"{region}{angle:+d}" if angle else region)
            boxes.append(rect)
            angles.append(angle)
    boxes, angles = np.array(boxes, np.float32), np.array(angles, np.float32)
    codes = _codes(_dct(_sample(grey, boxes, angles)))
    thumbs = {
        name: _sample(grey, np.array([r]), np.zeros(1), THUMB)[0] for name, r in regions.items()
    }
    whole = np.array([(0, w, 0, h)], np.float32)
    colour = np.stack([_sample(p, whole, np.zeros(1), CHROMA)[0] for p in chroma])
    packed = _thumbs_pack((w, h), regions, thumbs, colour)
    return CropStored(tuple(forms), codes, _colour_codes(chroma, boxes, angles), packed)


def query_codes(pic: CropPicture, *, holds_crops: bool = False) -> CropQuery:
    """The codes of where a stored picture's central region may lie in this one: stored
    pictures this one is a crop (CROP_CUTS), or a trimmed form, of; with `holds_crops`, also
    stored pictures that are crops of this one (HELD_CUTS: a decided original meeting its
    cropped copies in propagation)."""
    grey, chroma = _planes(pic)
    coefficients, rects = [], []
    grids = [(name, rect, CROP_CUTS if name == "whole" else (0.0,)) for name, rect in pic.trims]
    if holds_crops:
        grids.append(("whole", dict(pic.trims)["whole"], HELD_CUTS))
    for _, (x0, x1, y0, y1), cuts in grids:
        xs, ys = _hypotheses(x0, x1, cuts), _hypotheses(y0, y1, cuts)
        coefficients.append(_grid_dct(grey, xs, ys))
        rects += [(x[0], x[1], y[0], y[1]) for y in ys for x in xs]
    rects = np.array(rects, np.float32)
    codes = _codes(np.concatenate(coefficients))
    colours = _colour_codes(chroma, rects, np.zeros(len(rects), np.float32))
    return CropQuery(codes, colours, rects)


def code_bytes(code: int, colour: int) -> bytes:
    """A code and its colour code as the index and the database hold them: 12 bytes."""
    return struct.pack("<QI", code, colour)


def code_parts(data: bytes) -> tuple[int, int]:
    return struct.unpack("<QI", data)


def code_records(codes: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Many codes as code_bytes lays each out, in one (n, 12) uint8 array (CodeIndex takes it)."""
    out = np.empty((len(codes), 12), np.uint8)
    out[:, :8] = np.asarray(codes).astype("<u8").view(np.uint8).reshape(-1, 8)
    out[:, 8:] = np.asarray(colours).astype("<u4").view(np.uint8).reshape(-1, 4)
    return out


def _centre(rect: Rect) -> Rect:
    x0, x1, y0, y1 = rect
    mx, my = (1 - CENTRE) / 2 * (x1 - x0), (1 - CENTRE) / 2 * (y1 - y0)
    return (x0 + mx, x1 - mx, y0 + my, y1 - my)


def _hypotheses(start: float, end: float, cuts) -> np.ndarray:
    """(start, end) of the stored central region if [start, end) is the stored picture with
    `a` of its side cut at the start and `b` at the end, for every a, b in cuts."""
    m = (1 - CENTRE) / 2
    span = end - start
    return np.array(
        [(start + span * (m - a) / (1 - a - b), start + span * (1 - m - a) / (1 - a - b))
         for a in cuts for b in cuts]
    )  # fmt: skip


def _dct_matrix() -> np.ndarray:
    i = np.arange(N)
    return np.cos(np.pi * np.arange(K)[:, None] * (i + 0.5) / N).astype(np.float32)


_D = _dct_matrix()


def _dct(samples: np.ndarray) -> np.ndarray:
    return np.einsum("kn,hnm,lm->hkl", _D, samples, _D)


def _axis_weights(spans: np.ndarray, length: int) -> np.ndarray:
    """(H, N, length) bilinear weights sampling N points evenly over each (start, end)."""
    starts, ends = spans[:, 0], spans[:, 1]
    pos = starts[:, None] + (np.arange(N) + 0.5) / N * (ends - starts)[:, None] - 0.5
    pos = np.clip(pos, 0, length - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), max(0, length - 2))
    frac = (pos - lo).astype(np.float32)
    w = np.zeros((len(spans), N, length), np.float32)
    h_idx, i_idx = np.indices(lo.shape)
    w[h_idx, i_idx, lo] = 1 - frac
    if length > 1:
        w[h_idx, i_idx, lo + 1] += frac
    return w


def _grid_dct(g: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys) * len(xs), K, K) DCT coefficients of every rectangle xs[j] x ys[i], row-major."""
    py = np.einsum("kn,hnl->hkl", _D, _axis_weights(ys, g.shape[0]))
    px = np.einsum("kn,hnl->hkl", _D, _axis_weights(xs, g.shape[1]))
    left = np.einsum("akr,rc->akc", py, g)
    return np.einsum("akc,blc->abkl", left, px).reshape(-1, K, K)


def _sample(g: np.ndarray, rects: np.ndarray, angles: np.ndarray, n: int = N) -> np.ndarray:
    """(H, n, n) bilinear samples of rectangles turned by angles (degrees) about their centres."""
    rects = np.asarray(rects, np.float32).reshape(-1, 4)
    angles = np.radians(np.asarray(angles, np.float32).reshape(-1))
    cx, cy = (rects[:, 0] + rects[:, 1]) / 2, (rects[:, 2] + rects[:, 3]) / 2
    w, h = rects[:, 1] - rects[:, 0], rects[:, 3] - rects[:, 2]
    t = (np.arange(n, dtype=np.float32) + 0.5) / n - 0.5
    cos, sin = np.cos(angles), np.sin(angles)
    # x = cx + u cos - v sin, y = cy + u sin + v cos, with u = t_j w along j, v = t_i h along i
    ux, uy = (w * cos)[:, None] * t, (w * sin)[:, None] * t
    vx, vy = (-h * sin)[:, None] * t, (h * cos)[:, None] * t
    rows, cols = g.shape
    x = np.clip((cx - 0.5)[:, None, None] + ux[:, None, :] + vx[:, :, None], 0, cols - 1)
    y = np.clip((cy - 0.5)[:, None, None] + uy[:, None, :] + vy[:, :, None], 0, rows - 1)
    x0, y0 = x.astype(np.int32), y.astype(np.int32)
    fx, fy = x - x0, y - y0
    # The last row and column repeated, so x0 + 1 and y0 + 1 stay inside.
    padded = np.pad(g, ((0, 1), (0, 1)), mode="edge").ravel()
    idx = y0 * (cols + 1) + x0
    a, b = padded.take(idx), padded.take(idx + 1)
    c, d = padded.take(idx + cols + 1), padded.take(idx + cols + 2)
    top = a + (b - a) * fx
    return top + (c + (d - c) * fx - top) * fy


def _codes(coefficients: np.ndarray) -> np.ndarray:
    """(H,) uint64: the 63 AC coefficients of each (K, K) block above their median."""
    ac = coefficients.reshape(len(coefficients), -1)[:, 1:]
    bits = (ac > np.median(ac, axis=1, keepdims=True)).astype(np.uint64)
    return (bits << np.arange(ac.shape[1], dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def _colour_codes(chroma: np.ndarray, rects: np.ndarray, angles: np.ndarray) -> np.ndarray:
    means = np.stack([_sample(p, rects, angles, 8).mean(axis=(1, 2)) for p in chroma])
    bits = (means[:, :, None] > COLOUR_STEPS).astype(np.uint32)  # (2, H, 16): Cb, then Cr
    shifts = np.arange(32, dtype=np.uint32).reshape(2, 1, 16)
    return (bits << shifts).sum(axis=(0, 2), dtype=np.uint32)


# --- Trims (on the HASH_SIZE grey) ------------------------------------------------------------


def _trims(g: np.ndarray) -> dict[str, Rect]:
    """Named content rectangles of a picture, the whole picture first, each once (to a pixel)."""
    h, w = g.shape
    found = {"whole": (0, w, 0, h)}
    if uniform := _trim_uniform(g, found["whole"]):
        found["trim"] = uniform
    for side in ("top", "bottom"):
        for k, cut in enumerate(_trim_caption(g, side)):
            # A flat sky or ground under the band is trimmed too, as the stored side trims it.
            found[f"cap-{side}{k}"] = _trim_uniform(g, cut) or cut
    if blurred := _trim_blurred(g):
        found["blur"] = blurred
    if sharp := _trim_sharp(g):
        found["sharp"] = sharp
        if inner := _trim_uniform(g, sharp):  # a flat background inside the pasted picture
            found["sharp-trim"] = inner
    for name in ("blur", "sharp"):  # pasted pictures are usually centred
        if name in found:
            x0, x1, y0, y1 = found[name]
            mx, my = (x0 + w - x1) / 2, (y0 + h - y1) / 2
            found[f"{name}-sym"] = (mx, w - mx, my, h - my)
    out: dict[str, Rect] = {}
    for name, rect in found.items():
        if all(max(abs(a - b) for a, b in zip(rect, r, strict=True)) > 1 for r in out.values()):
            out[name] = rect
    return out


def _edge_run(lines: np.ndarray, tol: float, share: float) -> int:
    """How many of `lines` (from the edge inward) have `share` of their pixels within tol of
    the edge line's median."""
    close = (np.abs(lines - np.median(lines[0])) <= tol).mean(axis=1) >= share
    if not close[0]:
        return 0
    return len(lines) if close.all() else int(np.argmin(close))


def _trim_uniform(g: np.ndarray, rect: Rect) -> Rect | None:
    """`rect` without uniform borders, trimmed again while that changes it; None if none."""
    out = None
    for _ in range(UNIFORM_ROUNDS):
        x0, x1, y0, y1 = out or rect
        sub = g[y0:y1, x0:x1]
        h, w = sub.shape
        top, bottom = (
            _edge_run(sub, UNIFORM_TOL, UNIFORM_SHARE),
            _edge_run(sub[::-1], UNIFORM_TOL, UNIFORM_SHARE),
        )
        left, right = (
            _edge_run(sub.T, UNIFORM_TOL, UNIFORM_SHARE),
            _edge_run(sub.T[::-1], UNIFORM_TOL, UNIFORM_SHARE),
        )
        if top + bottom + left + right == 0:
            break
        if w - left - right < MIN_CONTENT * w or h - top - bottom < MIN_CONTENT * h:
            break
        out = (x0 + left, x1 - right, y0 + top, y1 - bottom)
    return out


def _trim_caption(g: np.ndarray, side: str) -> list[Rect]:
    """The picture without a caption band at `side` ("top" or "bottom"), for each place the
    band may end (see CAPTION_RANGE)."""
    h, w = g.shape
    sub = g if side == "top" else g[::-1]
    if (np.abs(sub[0] - np.median(sub[0])) <= CAPTION_TOL).mean() < CAPTION_SOLID:
        return []
    lo, hi = max(2, int(CAPTION_RANGE[0] * h)), int(CAPTION_RANGE[1] * h)
    if hi <= lo:
        return []
    window = np.abs(np.diff(sub, axis=0)).mean(axis=1)[lo - 1 : hi]  # rows i -> i + 1
    peaks = [
        i
        for i in range(len(window))
        if window[i] >= window[max(0, i - 1)] and window[i] >= window[min(len(window) - 1, i + 1)]
    ]
    peaks.sort(key=lambda i: -window[i])
    runs = [lo + i for i in peaks[:CAPTION_EDGES]]  # rows 0 .. run - 1 are the band
    run = _edge_run(sub, CAPTION_TOL, CAPTION_SHARE)
    if lo <= run <= hi and run not in runs:
        runs.append(run)
    return [(0, w, run, h) if side == "top" else (0, w, 0, h - run) for run in runs]


def _trim_blurred(g: np.ndarray) -> Rect | None:
    """The sharp picture inside a blurred copy of itself: the rows and columns from each edge
    whose gradient energy is under BLUR_ENERGY x the median left out."""
    h, w = g.shape
    cuts = []
    for energy in (
        np.abs(np.diff(g, axis=1)).mean(axis=1),
        np.abs(np.diff(g, axis=0)).mean(axis=0),
    ):
        low = energy < BLUR_ENERGY * max(np.median(energy), 1e-3)
        if low.all():
            cuts.append((0, len(energy)))
        else:
            cuts.append((int(np.argmin(low)), len(energy) - int(np.argmin(low[::-1]))))
    (y0, y1), (x0, x1) = cuts
    if x0 + (w - x1) + y0 + (h - y1) <= 1:
        return None
    if x1 - x0 < MIN_CONTENT * w or y1 - y0 < MIN_CONTENT * h:
        return None
    return (x0, x1, y0, y1)


def _trim_sharp(g: np.ndarray) -> Rect | None:
    """The bounding box of the rows and columns with SHARP_SHARE of sharp pixels: a picture
    pasted on a blurred copy of itself has none outside."""
    lap = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
    sharp = lap > SHARP_LEVEL
    h, w = g.shape
    rows = np.flatnonzero(sharp.mean(axis=1) >= SHARP_SHARE)
    cols = np.flatnonzero(sharp.mean(axis=0) >= SHARP_SHARE)
    if len(rows) == 0 or len(cols) == 0:
        return None
    # A pixel of slack each side (the Laplacian's rows and columns are one in from the picture's).
    y0, y1, x0, x1 = (
        int(rows[0]),
        min(h, int(rows[-1]) + 3),
        int(cols[0]),
        min(w, int(cols[-1]) + 3),
    )
    if x0 + (w - x1) + y0 + (h - y1) <= 2:
        return None
    if x1 - x0 < MIN_CONTENT * w or y1 - y0 < MIN_CONTENT * h:
        return None
    return (x0, x1, y0, y1)


# --- Confirm --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    """A stored picture's thumbnails, unpacked."""

    size: tuple[int, int]  # (width, height) of its grey copy
    regions: dict[str, Rect]  # region ("c80", "trim") -> its rectangle in the grey copy
    thumbs: dict[str, np.ndarray]  # region -> (THUMB, THUMB) float32 grey thumbnail
    chroma: np.ndarray  # (2, CHROMA, CHROMA) float32 Cb, Cr of the whole picture


_HEAD = struct.Struct("<HHB")  # width, height, regions
_REGION = struct.Struct("<8s4f")  # name, rectangle; then the THUMB x THUMB uint8 thumbnail


def _thumbs_pack(size, regions: dict[str, Rect], thumbs: dict[str, np.ndarray], chroma) -> bytes:
    parts = [_HEAD.pack(*size, len(regions))]
    for name, rect in regions.items():
        parts.append(_REGION.pack(name.encode(), *rect))
        parts.append(np.clip(np.round(thumbs[name]), 0, 255).astype(np.uint8).tobytes())
    parts.append(np.clip(np.round(chroma), -128, 127).astype(np.int8).tobytes())
    return b"".join(parts)


def _thumbs_unpack(data: bytes) -> _Stored:
    """Raises ValueError if `data` is not what _thumbs_pack makes (a damaged row)."""
    try:
        stored = _thumbs_read(data)
    except (struct.error, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"not crophash thumbnails: {error}") from error
    if set(stored.regions) - {"c80", "trim"}:
        raise ValueError(f"not crophash thumbnails: regions {sorted(stored.regions)}")
    return stored


def _thumbs_read(data: bytes) -> _Stored:
    width, height, count = _HEAD.unpack_from(data)
    at, regions, thumbs = _HEAD.size, {}, {}
    for _ in range(count):
        name, *rect = _REGION.unpack_from(data, at)
        name = name.rstrip(b"\0").decode()
        at += _REGION.size
        regions[name] = tuple(rect)
        thumb = np.frombuffer(data, np.uint8, THUMB * THUMB, at).reshape(THUMB, THUMB)
        thumbs[name] = thumb.astype(np.float32)
        at += THUMB * THUMB
    chroma = np.frombuffer(data, np.int8, 2 * CHROMA * CHROMA, at).reshape(2, CHROMA, CHROMA)
    return _Stored((width, height), regions, thumbs, chroma.astype(np.float32))


def _form_parts(form: str) -> tuple[str, float]:
    """("c80", -3.0) of "c80-3"."""
    for sign in "+-":
        if sign in form:
            region, degrees = form.split(sign)
            return region, float(sign + degrees)
    return form, 0.0


def crop_match(pic: CropPicture, query: CropQuery, stored: CropStored) -> CropMatch | None:
    """Whether `stored` is the picture `query` is a crop, border, letterbox, caption or small
    turn of: its code pairs within RADIUS (colour codes within COLOUR_RADIUS), nearest first,
    confirmed (`confirm`)."""
    bits = np.bitwise_count(query.codes[:, None] ^ stored.codes[None, :])
    colours = np.bitwise_count(query.colours[:, None] ^ stored.colours[None, :])
    i, j = np.nonzero((bits <= RADIUS) & (colours <= COLOUR_RADIUS))
    if not len(i):
        return None
    order = np.argsort(bits[i, j], kind="stable")
    hits = [(int(i[k]), stored.forms[j[k]], int(bits[i[k], j[k]])) for k in order]
    return confirm(pic, query, hits, stored.thumbs)


def confirm(
    pic: CropPicture, query: CropQuery, hits: list[tuple[int, str, int]], thumbs: bytes
) -> CropMatch | None:
    """The first of the TRIES best distinct hypotheses of `hits` ((query code index, stored
    form, bits) for one stored picture, nearest first) whose alignment passes the correlation,
    colour and content checks; `thumbs` is that picture's CropStored.thumbs."""
    stored = _thumbs_unpack(thumbs)
    grey, chroma = _planes(pic)
    seen = set()
    for i, form, bits in hits:
        region, angle = _form_parts(form)
        # Neighbouring hypotheses of one region align the same way: one try for them all.
        key = (region, tuple(np.round(query.rects[i] / 4)))
        if key in seen or region not in stored.thumbs:  # (rows of two fingerprintings)
            continue
        seen.add(key)
        score, where = _align(grey, tuple(query.rects[i]), -angle, stored.thumbs[region])
        if (
            score >= CONFIRM_MIN
            and _chroma_distance(chroma, where, stored, region) <= CHROMA_MAX
            and _content_score(grey, where, stored, region) >= CONTENT_MIN
            and _luma_distance(grey, where, stored, region) <= LUMA_MAX
        ):
            edit = _edit(pic, where, stored, region)
            return CropMatch(round(float(score), 4), form, bits, edit)
        if len(seen) >= TRIES:
            break
    return None


def _align(grey: np.ndarray, rect: Rect, angle: float, thumb: np.ndarray) -> tuple[float, tuple]:
    """(correlation, (rect, angle)) of the thumbnail aligned in the query around a hypothesis:
    ECC from it; short of CONFIRM_MIN, a greedy search and ECC again from where it ends (ECC
    alone misses a hypothesis a few % off). -1 if the hypothesis itself is far off (QUICK_MIN)."""
    if (
        _correlations(_sample(grey, np.array([rect]), np.array([angle]), THUMB), thumb)[0]
        < QUICK_MIN
    ):
        return -1.0, (rect, angle)
    first = _ecc(grey, rect, angle, thumb)
    if first[0] >= CONFIRM_MIN:
        return first
    greedy = _greedy(grey, rect, angle, thumb)
    if greedy[0] >= CONFIRM_MIN:
        return greedy
    return max(first, greedy, _ecc(grey, *greedy[1], thumb), key=lambda found: found[0])


def _ecc(grey: np.ndarray, rect: Rect, angle: float, thumb: np.ndarray) -> tuple[float, tuple]:
    """OpenCV's findTransformECC (affine) of the thumbnail in the query, from the hypothesis."""
    x0, x1, y0, y1 = rect
    a = math.radians(angle)
    sx, sy = (x1 - x0) / THUMB, (y1 - y0) / THUMB
    cos, sin = math.cos(a), math.sin(a)
    m = np.array([[sx * cos, -sy * sin, 0.0], [sx * sin, sy * cos, 0.0]], np.float32)
    # The thumbnail's centre (THUMB / 2 - 0.5: OpenCV's pixel centres are integers) goes to the
    # rectangle's centre, shifted the same way.
    c = THUMB / 2 - 0.5
    m[0, 2] = (x0 + x1) / 2 - 0.5 - (m[0, 0] + m[0, 1]) * c
    m[1, 2] = (y0 + y1) / 2 - 0.5 - (m[1, 0] + m[1, 1]) * c
    try:
        score, m = cv2.findTransformECC(thumb, grey, m, cv2.MOTION_AFFINE, ECC_CRITERIA, None, 1)
    except cv2.error:  # did not converge, or a flat thumbnail
        return -1.0, (rect, angle)
    corners = np.array([[-0.5, -0.5, 1], [THUMB - 0.5, -0.5, 1], [-0.5, THUMB - 0.5, 1]])
    (px, py), (qx, qy), (rx, ry) = corners @ m.T + 0.5
    width, height = math.hypot(qx - px, qy - py), math.hypot(rx - px, ry - py)
    mx, my = (qx + rx) / 2, (qy + ry) / 2
    turn = math.degrees(math.atan2(qy - py, qx - px))
    return float(score), ((mx - width / 2, mx + width / 2, my - height / 2, my + height / 2), turn)


def _greedy(grey: np.ndarray, rect: Rect, angle: float, thumb: np.ndarray) -> tuple[float, tuple]:
    """A greedy search over centre, size and angle, at THUMB / 2 and then at THUMB."""
    x0, x1, y0, y1 = rect
    p = np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, angle], np.float64)
    scale = np.array([p[2], p[3], p[2], p[3], 1.0]) * np.array(REFINE_STEPS)
    half = THUMB // 2
    coarse = thumb.reshape(half, 2, half, 2).mean(axis=(1, 3))
    _, p, factor = _refine(grey, p, scale, coarse, 1.0, REFINE_ITER, REFINE_MIN)
    best, p, _ = _refine(grey, p, scale, thumb, REFINE_MIN, REFINE_FINE, REFINE_MIN / 2)
    return best, (tuple(_params_rect(p[None])[0]), float(p[4]))


def _refine(grey, p, scale, thumb, factor, iterations, floor):
    size = len(thumb)
    best = float(_correlations(_sample(grey, _params_rect(p[None]), p[None, 4], size), thumb)[0])
    for _ in range(iterations):
        moves = p[None] + np.concatenate([np.eye(5), -np.eye(5)]) * (scale * factor)
        scores = _correlations(_sample(grey, _params_rect(moves), moves[:, 4], size), thumb)
        i = int(np.argmax(scores))
        if scores[i] > best + 1e-4:
            best, p = float(scores[i]), moves[i]
        else:
            factor /= 2
            if factor < floor:
                break
    return best, p, factor


def _params_rect(p: np.ndarray) -> np.ndarray:
    """(cx, cy, w, h, angle) rows -> (x0, x1, y0, y1) rows."""
    cx, cy, w, h = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    return np.stack([cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2], axis=1)


def _correlations(samples: np.ndarray, thumb: np.ndarray) -> np.ndarray:
    a = samples.reshape(len(samples), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = thumb.reshape(-1) - thumb.mean()
    return (a @ b) / (np.sqrt((a * a).sum(axis=1) * (b * b).sum()) + 1e-6)


def _mapped(where: tuple, stored: _Stored, region: str, target: Rect) -> tuple[Rect, float]:
    """Where the alignment `where` of a stored region puts another stored rectangle `target`
    (the whole picture, its trimmed content) in the query: (rect, angle)."""
    (qx0, qx1, qy0, qy1), angle = where
    sx0, sx1, sy0, sy1 = stored.regions[region]
    kx, ky = (qx1 - qx0) / (sx1 - sx0), (qy1 - qy0) / (sy1 - sy0)
    tx0, tx1, ty0, ty1 = target
    dx, dy = ((tx0 + tx1) - (sx0 + sx1)) / 2 * kx, ((ty0 + ty1) - (sy0 + sy1)) / 2 * ky
    a = math.radians(angle)
    cx = (qx0 + qx1) / 2 + dx * math.cos(a) - dy * math.sin(a)
    cy = (qy0 + qy1) / 2 + dx * math.sin(a) + dy * math.cos(a)
    w, h = (tx1 - tx0) * kx, (ty1 - ty0) * ky
    return (cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2), angle


def _inside(rect: Rect, angle: float, n: int, shape: tuple[int, int]) -> np.ndarray:
    """(n, n) bool: which cells of an n x n sampling of the turned rectangle fall inside a
    picture of `shape` (rows, columns)."""
    x0, x1, y0, y1 = rect
    t = (np.arange(n) + 0.5) / n - 0.5
    u, v = t[None, :] * (x1 - x0), t[:, None] * (y1 - y0)
    a = math.radians(angle)
    x = (x0 + x1) / 2 + u * math.cos(a) - v * math.sin(a)
    y = (y0 + y1) / 2 + u * math.sin(a) + v * math.cos(a)
    rows, cols = shape
    return (x >= 0) & (x <= cols) & (y >= 0) & (y <= rows)


def _chroma_distance(chroma: np.ndarray, where: tuple, stored: _Stored, region: str) -> float:
    """Mean |dCb| + |dCr| of the stored picture's whole colour thumbnail (so a trimmed match
    still sees what it trimmed) and the query's colour where the alignment puts it, over the
    cells inside the query; 0 if either is grey (a grayscale copy). Same-template avatars and
    ads in other colours fail here."""
    width, height = stored.size
    rect, angle = _mapped(where, stored, region, (0, width, 0, height))
    inside = _inside(rect, angle, CHROMA, chroma.shape[1:])
    if inside.mean() < 0.3:
        return math.inf  # too little of the stored picture in view to vouch for it
    rect = np.array([rect])
    mine = np.stack([_sample(p, rect, np.array([angle]), CHROMA)[0] for p in chroma])
    theirs = stored.chroma
    if min(np.abs(mine).sum(axis=0)[inside].mean(), np.abs(theirs).sum(axis=0)[inside].mean()) < (
        GREY_CHROMA
    ):
        return 0.0
    return float(np.abs(mine - theirs).sum(axis=0)[inside].mean())


def _luma_distance(grey: np.ndarray, where: tuple, stored: _Stored, region: str) -> float:
    """The 90th percentile, over LUMA_BLOCK-px blocks of the stored c80 thumbnail at least half
    inside the query, of |mean dY| between it and the query where the alignment puts it;
    0 if no block is. The correlation ignores brightness and contrast, and a trimmed match
    sees only the trimmed content: the same avatar face or ad layout on another background,
    or in another brightness, passes it (and the colour check, if its hue is near), not this.
    A hard copy keeps its grey levels: under 9 for 99.9% of the hard edits of seeds 0-1."""
    rect, angle = _mapped(where, stored, region, stored.regions["c80"])
    sample = _warped(grey, rect, angle, THUMB)
    blocks = (THUMB // LUMA_BLOCK, LUMA_BLOCK, THUMB // LUMA_BLOCK, LUMA_BLOCK)
    differences = (sample - stored.thumbs["c80"]).reshape(blocks)
    if _corners_inside(rect, angle, grey.shape):  # the usual case, with no mask to apply
        means = differences.mean(axis=(1, 3)).ravel()
    else:
        inside = _inside(rect, angle, THUMB, grey.shape).reshape(blocks)
        counts = inside.sum(axis=(1, 3))
        seen = counts >= LUMA_BLOCK * LUMA_BLOCK / 2
        if not seen.any():
            return 0.0
        means = (differences * inside).sum(axis=(1, 3))[seen] / counts[seen]
    return _percentile_90(np.abs(means))


def _warped(g: np.ndarray, rect: Rect, angle: float, n: int) -> np.ndarray:
    """_sample of one rectangle (the same samples within 1e-3 grey levels: OpenCV quantises the
    bilinear weights) by cv2.warpAffine, 6 us instead of 100."""
    x0, x1, y0, y1 = rect
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    w, h = x1 - x0, y1 - y0
    t = 0.5 / n - 0.5  # _sample's first offset along each side
    m = np.array(
        [
            [w / n * cos, -h / n * sin, (x0 + x1) / 2 - 0.5 + t * (w * cos - h * sin)],
            [w / n * sin, h / n * cos, (y0 + y1) / 2 - 0.5 + t * (w * sin + h * cos)],
        ]
    )
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(g, m, (n, n), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _corners_inside(rect: Rect, angle: float, shape: tuple[int, int]) -> bool:
    x0, x1, y0, y1 = rect
    cx, cy, a = (x0 + x1) / 2, (y0 + y1) / 2, math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    rows, cols = shape
    for u in ((x0 - x1) / 2, (x1 - x0) / 2):
        for v in ((y0 - y1) / 2, (y1 - y0) / 2):
            x, y = cx + u * cos - v * sin, cy + u * sin + v * cos
            if not (0 <= x <= cols and 0 <= y <= rows):
                return False
    return True


def _percentile_90(values: np.ndarray) -> float:
    """np.percentile(values, 90) (linear), without its overhead of some 30 us."""
    ordered = np.sort(values)
    at = 0.9 * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (at - low))


def _content_score(grey: np.ndarray, where: tuple, stored: _Stored, region: str) -> float:
    """For a match of a stored picture's whole region when it has bars or a wide border (its
    trim keeps < CONTENT_SHARE of its area), the correlation of its trimmed content with the
    query where the alignment puts it: two unrelated pictures in the same letterbox align by
    their bars alone. 1.0 when that does not apply."""
    if region != "c80" or "trim" not in stored.regions:
        return 1.0
    tx0, tx1, ty0, ty1 = stored.regions["trim"]
    wx0, wx1, wy0, wy1 = stored.regions["c80"]
    if (tx1 - tx0) * (ty1 - ty0) >= CONTENT_SHARE * (wx1 - wx0) * (wy1 - wy0):
        return 1.0
    rect, angle = _mapped(where, stored, region, stored.regions["trim"])
    sample = _sample(grey, np.array([rect]), np.array([angle]), THUMB)
    return float(_correlations(sample, stored.thumbs["trim"])[0])


def _edit(pic: CropPicture, where: tuple, stored: _Stored, region: str) -> str:
    """What the query looks like, for a reviewer: from the turn of the alignment and from where
    it puts the whole stored picture in the query (the sides the query adds or cuts)."""
    if abs(where[1]) >= TURNED:
        return "turned"
    width, height = stored.size
    (x0, x1, y0, y1), _ = _mapped(where, stored, region, (0, width, 0, height))
    h, w = pic.grey.shape
    # Per side, the share of the stored picture's size the query adds (> 0) or cuts (< 0).
    sides = {
        "left": x0 / (x1 - x0),
        "right": (w - x1) / (x1 - x0),
        "top": y0 / (y1 - y0),
        "bottom": (h - y1) / (y1 - y0),
    }
    added = {side for side, share in sides.items() if share > CROPPED}
    if added in ({"top"}, {"bottom"}):
        return "captioned"
    if added in ({"top", "bottom"}, {"left", "right"}):
        return "letterboxed"
    if added:
        return "bordered"
    if min(sides.values()) < -CROPPED:
        return "cropped"
    # Turned a little, and not cropped to hide it (the ECC angle is noisier under a crop).
    return "turned" if abs(where[1]) >= TURNED_SLIGHTLY else "resized"


# Every form a stored picture may have (stored_codes), in a fixed order: an index entry names
# its owner and form by one number (samples.matching.form_key).
STORED_FORMS = tuple(
    f"{region}{angle:+d}" if angle else region
    for region in ("c80", "trim")
    for angle in STORED_ANGLES
)
