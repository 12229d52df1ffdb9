"""Crop-tolerant candidate codes and an alignment confirm (issue 8 research prototype; see
/work/scratch/issue8b/REPORT.md for the measurements and the recommended constants).

Functions from a decoded picture (PIL RGB: the <= 256 px `small` copy that
samples.fingerprints.image_fingerprint makes is enough) to
- `stored_codes`: what a stored picture (sample or result) is indexed by: 63-bit
  low-frequency DCT codes (uint64) of the central region (CENTRE) of the picture and of the
  picture trimmed of uniform borders, each also turned by STORED_ANGLES, their 32-bit colour
  codes, the grey thumbnails (THUMB x THUMB) of those regions and a Cb/Cr thumbnail of the
  whole picture that the confirm compares;
- `query_codes`: what a query picture searches with: the same code for many hypotheses of
  where a stored picture's central region lies in it: a grid over independent cuts of each
  side (CROP_CUTS) of the whole picture, and the central region of each trimmed version
  (uniform borders, caption band at the top or the bottom, blurred borders);
- `match(query, stored)`: candidates (code within RADIUS, colour code within
  COLOUR_RADIUS), then `confirm_both` (quick correlation, OpenCV ECC alignment, a greedy
  numpy search as fallback) with the colour (`chroma_distance`) and content
  (`content_score`) checks.

Everything works on one grey copy of GREY px (longer side); codes are computed for all
hypotheses in one vectorised pass: the bilinear sampling of an axis-aligned rectangle on an
N x N grid is separable (Wy @ G @ Wx.T), so the K x K lowest DCT coefficients of every
rectangle are (D Wy) G (D Wx).T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

GREY = 128  # px, longer side of the grey copy
N = 32  # sampling grid of a region
K = 8  # DCT coefficients per axis: K*K - 1 = 63 AC bits
CENTRE = 0.80  # stored region: the central 80% of each side
STORED_ANGLES = (0.0, -3.0, 3.0)
CROP_MAX = 0.10
CROP_LEVELS = 3  # per side: cuts CROP_MAX * (i + 0.5) / CROP_LEVELS
CROP_CUTS = (
    0.0,
    0.05,
    0.10,
)  # explicit cuts per side for the whole picture's grid (else CROP_LEVELS + 0)
TRIM_SLACK = (0.0,)  # extra cuts tried around a trimmed rectangle (share of its size)
THUMB = 32
BLUR_PASSES = 2  # [1 2 1] / 4 passes before sampling (anti-aliasing of the N-point grid)

UNIFORM_TOL = 8.0  # grey levels: a border row/column has >= UNIFORM_SHARE pixels this close
UNIFORM_SHARE = 0.97
UNIFORM_ROUNDS = 8
CAPTION_TOL = 12.0
CAPTION_SHARE = 0.3  # and the run of rows with this share of the band's colour
CAPTION_RANGE = (0.06, 0.24)  # of the height
BLUR_ENERGY = 0.2  # a row/column of blurred border: gradient energy < this x the median
MIN_CONTENT = 0.25  # a trim keeps at least this share of each side
SHARP_LEVEL = 6.0  # |4-neighbour Laplacian| of a sharp pixel (grey levels)
SHARP_SHARE = 0.03
CAPTION_SOLID = 0.9  # the band's edge row: this share within CAPTION_TOL of its median
CAPTION_EDGES = 2  # band ends tried: the strongest row-to-row changes in CAPTION_RANGE
STORE_WHOLE_WHEN_TRIMMED = True
TRIM_FINE = True  # find the trims on the 256-px grey (the picture given), not the 128-px copy
SYMMETRIC = True  # also the blurred/sharp trims with equal margins (pasted pictures are centred)


# --- Grey copy and sampling -----------------------------------------------------------------


def grey_copy(rgb: Image.Image, size: int | None = None) -> np.ndarray:
    size = GREY if size is None else size
    grey = rgb.convert("L")
    scale = size / max(grey.size)
    if scale < 1:
        target = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(target, Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float32)


def chroma_copy(rgb: Image.Image, shape: tuple[int, int]) -> np.ndarray:
    """(2, h, w) Cb and Cr (centred on 0) of the picture at the grey copy's size."""
    ycc = rgb.convert("YCbCr").resize((shape[1], shape[0]), Image.Resampling.BOX)
    planes = np.asarray(ycc, dtype=np.float32)[..., 1:] - 128
    return np.moveaxis(planes, -1, 0)


def _smooth(g: np.ndarray, passes: int | None = None) -> np.ndarray:
    for _ in range(BLUR_PASSES if passes is None else passes):
        p = np.pad(g, 1, mode="edge")
        g = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
        g = (g[:, :-2] + 2 * g[:, 1:-1] + g[:, 2:]) / 4
    return g.astype(np.float32)


def _dct(n: int = N, k: int = K) -> np.ndarray:
    i = np.arange(n)
    return np.cos(np.pi * np.arange(k)[:, None] * (i + 0.5) / n).astype(np.float32)


_DCTS: dict = {}


def _dmat() -> np.ndarray:
    if (N, K) not in _DCTS:
        _DCTS[(N, K)] = _dct(N, K)
    return _DCTS[(N, K)]


def _axis_weights(starts: np.ndarray, ends: np.ndarray, length: int, n: int = N) -> np.ndarray:
    """(H, n, length) bilinear weights sampling n points evenly over [start, end) (pixels)."""
    starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
    pos = starts[:, None] + (np.arange(n) + 0.5) / n * (ends - starts)[:, None] - 0.5
    pos = np.clip(pos, 0, length - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), max(0, length - 2))
    frac = (pos - lo).astype(np.float32)
    w = np.zeros((len(starts), n, length), np.float32)
    h_idx, i_idx = np.indices(lo.shape)
    w[h_idx, i_idx, lo] = 1 - frac
    if length > 1:
        w[h_idx, i_idx, lo + 1] += frac
    return w


def sample_rotated(g: np.ndarray, rects: np.ndarray, angles: np.ndarray, n: int = N) -> np.ndarray:
    """(H, n, n) bilinear samples of rectangles (x0, x1, y0, y1, px) turned by angles (deg)
    about their centres."""
    rects = np.asarray(rects, np.float32).reshape(-1, 4)
    angles = np.radians(np.asarray(angles, np.float32).reshape(-1))
    cx, cy = (rects[:, 0] + rects[:, 1]) / 2, (rects[:, 2] + rects[:, 3]) / 2
    w, h = rects[:, 1] - rects[:, 0], rects[:, 3] - rects[:, 2]
    t = (np.arange(n, dtype=np.float32) + 0.5) / n - 0.5
    cos, sin = np.cos(angles), np.sin(angles)
    # x = cx + u cos - v sin, y = cy + u sin + v cos, with u = t_j w, v = t_i h
    ux, uy = (w * cos)[:, None] * t, (w * sin)[:, None] * t  # (H, n) along j
    vx, vy = (-h * sin)[:, None] * t, (h * cos)[:, None] * t  # (H, n) along i
    rows, cols = g.shape
    x = (cx - 0.5)[:, None, None] + ux[:, None, :] + vx[:, :, None]
    y = (cy - 0.5)[:, None, None] + uy[:, None, :] + vy[:, :, None]
    np.clip(x, 0, cols - 1, out=x)
    np.clip(y, 0, rows - 1, out=y)
    x0 = x.astype(np.int32)
    y0 = y.astype(np.int32)
    fx, fy = x - x0, y - y0
    padded = _padded(g)
    idx = y0 * (cols + 1) + x0
    a = padded.take(idx)
    b = padded.take(idx + 1)
    c = padded.take(idx + cols + 1)
    d = padded.take(idx + cols + 2)
    top = a + (b - a) * fx
    return top + (c + (d - c) * fx - top) * fy


def _padded(g: np.ndarray) -> np.ndarray:
    """g with its last row and column repeated, raveled (so x0 + 1, y0 + 1 stay inside)."""
    return np.pad(g, ((0, 1), (0, 1)), mode="edge").ravel()


def _bits(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, K, K) coefficients -> (H,) uint64 codes of the AC coefficients above their median,
    and (H,) strengths (RMS of the AC coefficients over the mean level: ~0 for flat)."""
    flat = coef.reshape(len(coef), -1)
    ac = flat[:, 1:]
    med = np.median(ac, axis=1, keepdims=True)
    bits = (ac > med).astype(np.uint64)
    weights = np.uint64(1) << np.arange(ac.shape[1], dtype=np.uint64)
    codes = (bits * weights).sum(axis=1, dtype=np.uint64)
    strength = np.sqrt((ac**2).mean(axis=1)) / (N * N)
    return codes, strength.astype(np.float32)


def grid_coefficients(g: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys) * len(xs), K, K) DCT coefficients of every rectangle xs[j] x ys[i] (each an
    array of (start, end) pairs in pixels), row-major over (i, j)."""
    rows, cols = g.shape
    d = _dmat()
    py = np.einsum("kn,hnl->hkl", d, _axis_weights(ys[:, 0], ys[:, 1], rows, N))
    px = np.einsum("kn,hnl->hkl", d, _axis_weights(xs[:, 0], xs[:, 1], cols, N))
    left = np.einsum("akr,rc->akc", py, g)
    coef = np.einsum("akc,blc->abkl", left, px)
    return coef.reshape(-1, K, K)


def rect_coefficients(g: np.ndarray, rects: np.ndarray, angles: np.ndarray) -> np.ndarray:
    samples = sample_rotated(g, rects, angles, N)
    d = _dmat()
    return np.einsum("kn,hnm,lm->hkl", d, samples, d)


# --- Trims ----------------------------------------------------------------------------------


def _edge_run(lines: np.ndarray, tol: float, share: float) -> int:
    """How many of `lines` (from the edge inward, each a 1-D array) are within tol of the
    edge line's median for at least `share` of their pixels."""
    ref = np.median(lines[0])
    close = (np.abs(lines - ref) <= tol).mean(axis=1) >= share
    if not close[0]:
        return 0
    bad = np.flatnonzero(~close)
    return int(bad[0]) if len(bad) else len(lines)


def trim_uniform(g: np.ndarray, rect=None) -> tuple[float, float, float, float] | None:
    """The rectangle (x0, x1, y0, y1) without uniform borders or bars, or None: trimmed again
    while that changes it (a border of one colour around a flat background of another)."""
    out = None
    for _ in range(UNIFORM_ROUNDS):
        inner = _trim_uniform_once(g, out or rect)
        if inner is None:
            break
        out = inner
    return out


def _trim_uniform_once(g: np.ndarray, rect=None):
    x0, x1, y0, y1 = rect or (0, g.shape[1], 0, g.shape[0])
    sub = g[y0:y1, x0:x1]
    h, w = sub.shape
    top = _edge_run(sub, UNIFORM_TOL, UNIFORM_SHARE)
    bottom = _edge_run(sub[::-1], UNIFORM_TOL, UNIFORM_SHARE)
    left = _edge_run(sub.T, UNIFORM_TOL, UNIFORM_SHARE)
    right = _edge_run(sub.T[::-1], UNIFORM_TOL, UNIFORM_SHARE)
    if top + bottom + left + right == 0:
        return None
    if w - left - right < MIN_CONTENT * w or h - top - bottom < MIN_CONTENT * h:
        return None
    return (x0 + left, x1 - right, y0 + top, y1 - bottom)


def trim_caption(g: np.ndarray, rect, side: str) -> list[tuple]:
    """Rectangles without a caption band at `side` ("top" or "bottom"): the band (a flat
    colour with a line or two of text, CAPTION_RANGE of the height) ends at one of the
    CAPTION_EDGES strongest row-to-row changes in that range, and its edge row is solid."""
    x0, x1, y0, y1 = rect
    sub = g[y0:y1, x0:x1]
    if side == "bottom":
        sub = sub[::-1]
    h = sub.shape[0]
    edge = sub[0]
    if (np.abs(edge - np.median(edge)) <= CAPTION_TOL).mean() < CAPTION_SOLID:
        return []
    lo, hi = max(2, int(CAPTION_RANGE[0] * h)), int(CAPTION_RANGE[1] * h)
    if hi <= lo:
        return []
    change = np.abs(np.diff(sub, axis=0)).mean(axis=1)  # change[i]: rows i -> i + 1
    window = change[lo - 1 : hi]
    # local maxima, strongest first
    peaks = [
        i
        for i in range(len(window))
        if window[i] >= window[max(0, i - 1)] and window[i] >= window[min(len(window) - 1, i + 1)]
    ]
    peaks.sort(key=lambda i: -window[i])
    runs = [lo + i for i in peaks[:CAPTION_EDGES]]  # rows 0..run-1 are the band
    # and the run of rows from the edge that are at least CAPTION_SHARE of the band's colour
    run = _edge_run(sub, CAPTION_TOL, CAPTION_SHARE)
    if lo <= run <= hi and run not in runs:
        runs.append(run)
    return [(x0, x1, y0 + run, y1) if side == "top" else (x0, x1, y0, y1 - run) for run in runs]


def trim_blurred(g: np.ndarray):
    """The sharp picture inside a blurred copy of itself, or None: rows/columns from each edge
    whose gradient energy is under BLUR_ENERGY x the picture's median."""
    dx = np.abs(np.diff(g, axis=1))
    dy = np.abs(np.diff(g, axis=0))
    rows = dx.mean(axis=1)  # (h,)
    cols = dy.mean(axis=0)  # (w,)
    cuts = []
    for energy in (rows, cols):
        ref = np.median(energy)
        low = energy < BLUR_ENERGY * max(ref, 1e-3)
        start = int(np.argmin(low)) if not low.all() else 0
        end = len(energy) - int(np.argmin(low[::-1])) if not low.all() else len(energy)
        cuts.append((start, end))
    (y0, y1), (x0, x1) = cuts
    h, w = g.shape
    if x0 + (w - x1) + y0 + (h - y1) <= 1:
        return None
    if x1 - x0 < MIN_CONTENT * w or y1 - y0 < MIN_CONTENT * h:
        return None
    return (x0, x1, y0, y1)


def trim_sharp(g: np.ndarray):
    """The bounding box of the sharp pixels (|Laplacian| > SHARP_LEVEL): a picture pasted on a
    blurred copy of itself has none outside; rows/columns with fewer than SHARP_SHARE of
    their pixels sharp count as outside. None if that is (nearly) the whole picture."""
    lap = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
    sharp = lap > SHARP_LEVEL
    h, w = g.shape
    rows = np.flatnonzero(sharp.mean(axis=1) >= SHARP_SHARE)
    cols = np.flatnonzero(sharp.mean(axis=0) >= SHARP_SHARE)
    if len(rows) == 0 or len(cols) == 0:
        return None
    y0, y1, x0, x1 = rows[0], rows[-1] + 3, cols[0], cols[-1] + 3
    y0, x0 = max(0, y0), max(0, x0)
    y1, x1 = min(h, y1), min(w, x1)
    if x0 + (w - x1) + y0 + (h - y1) <= 2:
        return None
    if x1 - x0 < MIN_CONTENT * w or y1 - y0 < MIN_CONTENT * h:
        return None
    return (int(x0), int(x1), int(y0), int(y1))


def trims(g: np.ndarray) -> dict[str, tuple]:
    """Named content rectangles of the query (the whole picture first), deduplicated."""
    whole = (0, g.shape[1], 0, g.shape[0])
    found = {"whole": whole}
    uniform = trim_uniform(g)
    if uniform:
        found["trim"] = uniform
    for side in ("top", "bottom"):
        for k, cut in enumerate(trim_caption(g, whole, side)):
            again = trim_uniform(g, cut)  # flat sky or ground under the band, as stored
            found[f"cap-{side}{k}"] = again or cut
    blurred = trim_blurred(g)
    if blurred:
        found["blur"] = blurred
    sharp = trim_sharp(g)
    if sharp:
        found["sharp"] = sharp
        inner = trim_uniform(g, sharp)  # a flat background inside the pasted picture
        if inner:
            found["sharp-trim"] = inner
    if SYMMETRIC:
        h, w = g.shape
        for name in ("blur", "sharp"):
            if name in found:
                x0, x1, y0, y1 = found[name]
                mx, my = (x0 + w - x1) / 2, (y0 + h - y1) / 2
                found[name + "-sym"] = (mx, w - mx, my, h - my)
    out, seen = {}, []
    for name, r in found.items():
        if any(max(abs(a - b) for a, b in zip(r, s, strict=True)) <= 1 for s in seen):
            continue
        seen.append(r)
        out[name] = r
    return out


def _scaled_rect(rect, fx: float, fy: float):
    x0, x1, y0, y1 = rect
    return (x0 * fx, x1 * fx, y0 * fy, y1 * fy)


def _trim_grey(rgb: Image.Image | None, g: np.ndarray):
    """(grey the trims are found on, x factor, y factor to the grey copy g): the picture's own
    grey (the 256-px copy) when TRIM_FINE, for trims twice as precise; else g itself."""
    if not TRIM_FINE or rgb is None:
        return g, 1.0, 1.0
    fine = np.asarray(rgb.convert("L"), dtype=np.float32)
    return fine, g.shape[1] / fine.shape[1], g.shape[0] / fine.shape[0]


# --- Codes ----------------------------------------------------------------------------------


def _centre(rect, share: float = CENTRE):
    x0, x1, y0, y1 = rect
    m = (1 - share) / 2
    w, h = x1 - x0, y1 - y0
    return (x0 + m * w, x1 - m * w, y0 + m * h, y1 - m * h)


@dataclass
class Stored:
    codes: np.ndarray  # (S,) uint64
    strengths: np.ndarray  # (S,)
    forms: list  # (rect name, angle) per code
    thumbs: dict  # rect name -> (THUMB, THUMB) float32 of the central region at angle 0
    chroma: np.ndarray | None = None  # (2, CHROMA, CHROMA) Cb, Cr of the whole picture
    rects: dict = field(default_factory=dict)  # rect name -> its central region (pixels)
    size: tuple = (0, 0)  # (width, height) of the grey copy
    colours: np.ndarray | None = None  # (S,) uint64 colour codes of the regions (colour_codes)


def stored_codes(rgb: Image.Image, g: np.ndarray | None = None, c=None) -> Stored:
    g = grey_copy(rgb) if g is None else g
    c = chroma_copy(rgb, g.shape) if c is None else c
    s = _smooth(g)
    rects = {"whole": (0, g.shape[1], 0, g.shape[0])}
    fine, fx, fy = _trim_grey(rgb, g)
    uniform = trim_uniform(fine)
    if uniform:
        rects["trim"] = _scaled_rect(uniform, fx, fy)
        if not STORE_WHOLE_WHEN_TRIMMED:
            del rects["whole"]
    boxes, angles, forms = [], [], []
    for name, r in rects.items():
        for a in STORED_ANGLES:
            boxes.append(_centre(r))
            angles.append(a)
            forms.append((name, a))
    coef = rect_coefficients(s, np.array(boxes), np.array(angles))
    codes, strengths = _bits(coef)
    thumbs = {
        name: sample_rotated(s, np.array([_centre(r)]), np.zeros(1), THUMB)[0]
        for name, r in rects.items()
    }
    whole = np.array([(0, g.shape[1], 0, g.shape[0])], np.float32)
    chroma = np.stack([sample_rotated(_smooth(p), whole, np.zeros(1), CHROMA)[0] for p in c])
    centres = {name: _centre(r) for name, r in rects.items()}
    smooth_c = [_smooth(p) for p in c]
    colours = colour_codes(smooth_c, np.array(boxes), np.array(angles))
    return Stored(
        codes, strengths, forms, thumbs, chroma, centres, (g.shape[1], g.shape[0]), colours
    )


def _crop_levels(levels: int, top: float = CROP_MAX) -> np.ndarray:
    return top * (np.arange(levels) + 0.5) / levels


def _axis_hypotheses(start: float, end: float, cuts_a, cuts_b, share: float = CENTRE):
    """(start, end) pixels of the stored central region if this span is the stored picture
    with cuts a (at the start) and b (at the end), shares of the stored picture's side."""
    m = (1 - share) / 2
    span = end - start
    out = []
    for a in cuts_a:
        for b in cuts_b:
            keep = 1 - a - b
            out.append((start + span * (m - a) / keep, start + span * (1 - m - a) / keep))
    return np.array(out)


@dataclass
class Query:
    grey: np.ndarray  # smoothed grey copy (what codes and confirm sample)
    codes: np.ndarray  # (Q,) uint64
    strengths: np.ndarray
    rects: np.ndarray  # (Q, 4) hypothesis of the stored central region, pixels
    origins: list  # trim name per code
    trims: dict = field(default_factory=dict)
    chroma: np.ndarray | None = None  # (2, h, w) smoothed Cb, Cr
    colours: np.ndarray | None = None  # (Q,) uint64 colour codes (colour_codes)


def query_codes(
    rgb: Image.Image | None = None,
    g: np.ndarray | None = None,
    levels: int | None = None,
    slack=None,
    c=None,
) -> Query:
    levels = CROP_LEVELS if levels is None else levels
    slack = TRIM_SLACK if slack is None else slack
    g = grey_copy(rgb) if g is None else g
    s = _smooth(g)
    fine, fx, fy = _trim_grey(rgb, g)
    found = {k: _scaled_rect(r, fx, fy) for k, r in trims(fine).items()}
    all_coef, all_rects, origins = [], [], []
    for name, (x0, x1, y0, y1) in found.items():
        if name == "whole":
            cuts = (
                np.asarray(CROP_CUTS)
                if CROP_CUTS is not None
                else np.concatenate([_crop_levels(levels), np.asarray(slack)])
            )
        else:
            cuts = np.asarray(slack)
        xs = _axis_hypotheses(x0, x1, cuts, cuts)
        ys = _axis_hypotheses(y0, y1, cuts, cuts)
        all_coef.append(grid_coefficients(s, xs, ys))
        rects = np.array([(x[0], x[1], y[0], y[1]) for y in ys for x in xs])
        all_rects.append(rects)
        origins += [name] * len(rects)
    coef = np.concatenate(all_coef)
    codes, strengths = _bits(coef)
    c = chroma_copy(rgb, g.shape) if c is None else c
    chroma = np.stack([_smooth(p) for p in c])
    rects = np.concatenate(all_rects)
    colours = colour_codes(chroma, rects, np.zeros(len(rects)))
    return Query(s, codes, strengths, rects, origins, found, chroma, colours)


COLOUR_STEPS = np.arange(-60, 61, 8, dtype=np.float32)  # 16 thresholds per channel


def colour_codes(planes, rects: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(H,) uint64: the mean Cb and Cr of each region, thermometer-coded (a bit per threshold
    of COLOUR_STEPS passed; 16 bits each), so the Hamming distance counts 8-level steps."""
    means = np.stack([sample_rotated(p, rects, angles, 8).mean(axis=(1, 2)) for p in planes])
    bits = (means[:, :, None] > COLOUR_STEPS).astype(np.uint64)  # (2, H, 16)
    weights = np.uint64(1) << np.arange(32, dtype=np.uint64).reshape(2, 16)
    return (bits * weights[:, None, :]).sum(axis=(0, 2), dtype=np.uint64)


def popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


# --- Confirm --------------------------------------------------------------------------------

CONFIRM_MIN = 0.90
CHROMA = 16  # colour thumbnail cells per side
CHROMA_MAX = 20.0  # mean |Cb| + |Cr| difference (grey levels) of aligned colour thumbnails
GREY_CHROMA = 3.0  # a picture whose mean |Cb| + |Cr| is under this is grey: no colour check
REFINE_STEPS = (0.02, 0.02, 0.02, 0.02, 1.0)  # cx, cy, w, h (share of size), angle (deg)
REFINE_MIN = 0.125  # stop when steps shrank to this share of the first
REFINE_ITER = 30
REFINE_FINE = 4  # rounds at THUMB after the coarse search


def _score(samples: np.ndarray, thumb: np.ndarray) -> np.ndarray:
    a = samples.reshape(len(samples), -1)
    b = thumb.reshape(-1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean()
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum()) + 1e-6
    return (a @ b) / den


def _params_rect(p: np.ndarray) -> np.ndarray:
    cx, cy, w, h = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    return np.stack([cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2], axis=1)


def _refine(grey, p, scale, thumb, size, factor, iterations, floor):
    best = float(_score(sample_rotated(grey, _params_rect(p[None]), p[None, 4], size), thumb)[0])
    for _ in range(iterations):
        moves = np.concatenate([np.eye(5), -np.eye(5)]) * (scale * factor)
        cand = p[None] + moves
        scores = _score(sample_rotated(grey, _params_rect(cand), cand[:, 4], size), thumb)
        i = int(np.argmax(scores))
        if scores[i] > best + 1e-4:
            best, p = float(scores[i]), cand[i]
        else:
            factor /= 2
            if factor < floor:
                break
    return best, p, factor


def confirm(grey: np.ndarray, rect, angle: float, thumb: np.ndarray) -> tuple[float, tuple]:
    """(best correlation, (rect, angle)) of the stored thumbnail with the query's smoothed grey
    copy around the hypothesis `rect` (x0, x1, y0, y1) turned by `angle` degrees: a greedy
    search at THUMB / 2 (steps REFINE_STEPS, halved down to REFINE_MIN), then at THUMB."""
    x0, x1, y0, y1 = rect
    p = np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, angle], np.float64)
    scale = np.array([p[2], p[3], p[2], p[3], 1.0]) * np.array(REFINE_STEPS)
    half = THUMB // 2
    coarse = thumb.reshape(half, 2, half, 2).mean(axis=(1, 3))
    _, p, factor = _refine(grey, p, scale, coarse, half, 1.0, REFINE_ITER, REFINE_MIN)
    best, p, _ = _refine(grey, p, scale, thumb, THUMB, REFINE_MIN, REFINE_FINE, REFINE_MIN / 2)
    return best, (tuple(_params_rect(p[None])[0]), float(p[4]))


def chroma_distance(query_chroma: np.ndarray, where, stored: Stored, form: str) -> float:
    """Mean |Cb| + |Cr| difference between the stored picture's colour thumbnail (the whole
    picture, so a trimmed match still sees the background it trimmed) and the query's colour
    where the alignment `where` (of the stored form's central region) puts it, over the cells
    inside the query; 0 when either is grey (a grayscale copy)."""
    (qx0, qx1, qy0, qy1), angle = where
    sx0, sx1, sy0, sy1 = stored.rects[form]
    kx, ky = (qx1 - qx0) / (sx1 - sx0), (qy1 - qy0) / (sy1 - sy0)
    width, height = stored.size
    # the stored picture's centre relative to the form's centre, scaled and turned
    dx, dy = (width / 2 - (sx0 + sx1) / 2) * kx, (height / 2 - (sy0 + sy1) / 2) * ky
    a = math.radians(angle)
    cx = (qx0 + qx1) / 2 + dx * math.cos(a) - dy * math.sin(a)
    cy = (qy0 + qy1) / 2 + dx * math.sin(a) + dy * math.cos(a)
    w, h = width * kx, height * ky
    n = CHROMA
    t = (np.arange(n) + 0.5) / n - 0.5
    u, v = t[None, :] * w, t[:, None] * h
    x = cx + u * math.cos(a) - v * math.sin(a)
    y = cy + u * math.sin(a) + v * math.cos(a)
    rows, cols = query_chroma.shape[1:]
    inside = (x >= 0) & (x <= cols) & (y >= 0) & (y <= rows)
    if inside.mean() < 0.3:
        return 99.0  # too little of the stored picture in view to vouch for it
    rect = np.array([[cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2]])
    mine = np.stack([sample_rotated(p, rect, np.array([angle]), n)[0] for p in query_chroma])
    theirs = stored.chroma
    if (
        np.abs(mine).sum(axis=0)[inside].mean() < GREY_CHROMA
        or np.abs(theirs).sum(axis=0)[inside].mean() < GREY_CHROMA
    ):
        return 0.0
    return float(np.abs(mine - theirs).sum(axis=0)[inside].mean())


def codes_to_bytes(codes: np.ndarray) -> np.ndarray:
    """(n,) uint64 -> (n, 8) uint8 for faiss binary indexes."""
    return np.ascontiguousarray(codes.astype("<u8")).view(np.uint8).reshape(-1, 8)


def angle_of(form) -> float:
    return float(form[1])


def distance_matrix(q: np.ndarray, s: np.ndarray) -> np.ndarray:
    return popcount(q[:, None] ^ s[None, :])


__all__ = [
    "GREY",
    "Query",
    "Stored",
    "confirm",
    "grey_copy",
    "query_codes",
    "stored_codes",
    "trims",
    "math",
]


# --- Confirm with OpenCV's ECC (an alternative to `confirm`) ---------------------------------

ECC_ITER = 30
ECC_EPS = 1e-4


def confirm_ecc(grey: np.ndarray, rect, angle: float, thumb: np.ndarray) -> tuple[float, tuple]:
    """`confirm` by OpenCV's findTransformECC (affine, from the hypothesis): the enhanced
    correlation coefficient of the stored thumbnail and the query warped onto it."""
    import cv2

    x0, x1, y0, y1 = rect
    n = thumb.shape[0]
    a = math.radians(angle)
    sx, sy = (x1 - x0) / n, (y1 - y0) / n
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # template pixel (j + 0.5, i + 0.5) -> query (x, y), as sample_rotated; OpenCV's pixel
    # centres are integers, so shift by 0.5 on both sides
    cos, sin = math.cos(a), math.sin(a)
    m = np.array([[sx * cos, -sy * sin, 0.0], [sx * sin, sy * cos, 0.0]], dtype=np.float32)
    # centre of the template (n/2 - 0.5 in OpenCV coordinates) maps to (cx - 0.5, cy - 0.5)
    c = n / 2 - 0.5
    m[0, 2] = cx - 0.5 - (m[0, 0] * c + m[0, 1] * c)
    m[1, 2] = cy - 0.5 - (m[1, 0] * c + m[1, 1] * c)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITER, ECC_EPS)
    try:
        score, m = cv2.findTransformECC(
            thumb.astype(np.float32),
            grey.astype(np.float32),
            m,
            cv2.MOTION_AFFINE,
            criteria,
            None,
            1,
        )
    except cv2.error:
        return -1.0, (tuple(rect), angle)
    # back to (rect, angle): the template's corners through m
    corners = np.array([[-0.5, -0.5, 1], [n - 0.5, -0.5, 1], [-0.5, n - 0.5, 1]], np.float32)
    (px, py), (qx, qy), (rx, ry) = (corners @ m.T) + 0.5
    width = math.hypot(qx - px, qy - py)
    height = math.hypot(rx - px, ry - py)
    turn = math.degrees(math.atan2(qy - py, qx - px))
    mx, my = (qx + rx) / 2, (qy + ry) / 2
    return float(score), ((mx - width / 2, mx + width / 2, my - height / 2, my + height / 2), turn)


def quick_score(grey: np.ndarray, rect, angle: float, thumb: np.ndarray) -> float:
    """The correlation at the hypothesis itself (no search): a cheap first filter."""
    samples = sample_rotated(grey, np.array([rect]), np.array([angle]), thumb.shape[0])
    return float(_score(samples, thumb)[0])


QUICK_MIN = 0.4  # candidates under this quick score are dropped before any search


def confirm_both(
    grey: np.ndarray, rect, angle: float, thumb: np.ndarray, threshold: float = CONFIRM_MIN
) -> tuple[float, tuple]:
    """ECC from the hypothesis; under `threshold`, the greedy search and ECC from its result.
    A hypothesis whose quick score is under QUICK_MIN is rejected at once."""
    if quick_score(grey, rect, angle, thumb) < QUICK_MIN:
        return -1.0, (tuple(rect), angle)
    score, where = confirm_ecc(grey, rect, angle, thumb)
    if score >= threshold:
        return score, where
    greedy, at = confirm(grey, rect, angle, thumb)
    if greedy >= threshold:
        return greedy, at
    again, there = confirm_ecc(grey, at[0], at[1], thumb)
    return max((score, where), (greedy, at), (again, there), key=lambda x: x[0])


def quick_scores(
    grey: np.ndarray, rects: np.ndarray, angles: np.ndarray, thumbs: np.ndarray
) -> np.ndarray:
    """quick_score of many candidates in one pass: (M,) correlations of the query sampled at
    each hypothesis with each candidate's (M, THUMB, THUMB) thumbnail."""
    samples = sample_rotated(grey, rects, angles, thumbs.shape[1]).reshape(len(thumbs), -1)
    theirs = thumbs.reshape(len(thumbs), -1)
    a = samples - samples.mean(axis=1, keepdims=True)
    b = theirs - theirs.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / (np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)) + 1e-6)


def _highpass(a: np.ndarray) -> np.ndarray:
    """a minus its 3 x 3 [1 2 1] blur (edges repeated): the detail at the thumbnail's scale."""
    p = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    b = (p[..., :-2, :] + 2 * p[..., 1:-1, :] + p[..., 2:, :]) / 4
    b = (b[..., :, :-2] + 2 * b[..., :, 1:-1] + b[..., :, 2:]) / 4
    return a - b


def detail_score(grey: np.ndarray, where, thumb: np.ndarray) -> float:
    """Correlation of the high-passed query sample at the aligned rectangle with the high-passed
    stored thumbnail: the fine structure must agree too, not only the layout (two windows of
    one smooth picture share a gradient, not their texture)."""
    rect, angle = where
    sample = sample_rotated(grey, np.array([rect]), np.array([angle]), thumb.shape[0])[0]
    return float(_score(_highpass(sample)[None], _highpass(thumb))[0])


MASK_ERODE = False
MASK_STD = 3.0  # grey levels: a thumbnail cell whose 3 x 3 neighbourhood varies less is flat


def masked_score(grey: np.ndarray, where, thumb: np.ndarray) -> float:
    """Correlation of the aligned query sample with the stored thumbnail over the stored
    thumbnail's textured cells only: bars, bands and flat backgrounds shared by two unrelated
    pictures (a letterbox, a caption band) do not count."""
    rect, angle = where
    sample = sample_rotated(grey, np.array([rect]), np.array([angle]), thumb.shape[0])[0]
    p = np.pad(thumb, 1, mode="edge")
    n = thumb.shape[0]
    windows = np.stack([p[i : i + n, j : j + n] for i in range(3) for j in range(3)])
    mask = windows.std(axis=0) >= MASK_STD
    if MASK_ERODE:  # the cells next to a flat area (a bar's edge) do not count either
        m = np.pad(mask, 1, mode="edge")
        mask = np.all([m[i : i + n, j : j + n] for i in range(3) for j in range(3)], axis=0)
    if mask.mean() < 0.1:
        return -1.0
    a, b = sample[mask], thumb[mask]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-6))


CONTENT_SHARE = 0.8  # a stored picture whose trim keeps less than this share of its area


def _mapped(where, stored: Stored, form: str, target) -> tuple:
    """(rect, angle) in the query of the stored rectangle `target` (stored grey pixels), given
    the alignment `where` of the stored form's central region."""
    (qx0, qx1, qy0, qy1), angle = where
    sx0, sx1, sy0, sy1 = stored.rects[form]
    kx, ky = (qx1 - qx0) / (sx1 - sx0), (qy1 - qy0) / (sy1 - sy0)
    tx0, tx1, ty0, ty1 = target
    dx = ((tx0 + tx1) / 2 - (sx0 + sx1) / 2) * kx
    dy = ((ty0 + ty1) / 2 - (sy0 + sy1) / 2) * ky
    a = math.radians(angle)
    cx = (qx0 + qx1) / 2 + dx * math.cos(a) - dy * math.sin(a)
    cy = (qy0 + qy1) / 2 + dx * math.sin(a) + dy * math.cos(a)
    w, h = (tx1 - tx0) * kx, (ty1 - ty0) * ky
    return (cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2), angle


def content_score(grey: np.ndarray, where, stored: Stored, form: str) -> float:
    """For a match of a stored picture's whole form when it has bars or a wide uniform border
    (its trim keeps < CONTENT_SHARE of the area): the correlation of its trimmed content's
    thumbnail with the query where the alignment puts it (two unrelated pictures given the same
    letterbox align by their bars alone). 1.0 when that does not apply."""
    if form != "whole" or "trim" not in stored.rects:
        return 1.0
    tx0, tx1, ty0, ty1 = stored.rects["trim"]
    wx0, wx1, wy0, wy1 = stored.rects["whole"]
    if (tx1 - tx0) * (ty1 - ty0) >= CONTENT_SHARE * (wx1 - wx0) * (wy1 - wy0):
        return 1.0
    rect, angle = _mapped(where, stored, form, stored.rects["trim"])
    sample = sample_rotated(grey, np.array([rect]), np.array([angle]), THUMB)
    return float(_score(sample, stored.thumbs["trim"])[0])


# --- The decision, as measured (REPORT.md) -----------------------------------------------------

RADIUS = 10  # bits of the 63-bit code
COLOUR_RADIUS = 3  # bits of the 32-bit colour code
CONTENT_MIN = 0.8


def candidates(query: Query, stored: Stored) -> list[tuple[int, int, int]]:
    """(distance, query code index, stored code index) of the code pairs within RADIUS whose
    colour codes are within COLOUR_RADIUS, nearest first (what an index returns for one
    stored picture)."""
    d = popcount(query.codes[:, None] ^ stored.codes[None, :]).astype(np.int64)
    dc = popcount(query.colours[:, None] ^ stored.colours[None, :])
    i, j = np.nonzero((d <= RADIUS) & (dc <= COLOUR_RADIUS))
    order = np.argsort(d[i, j], kind="stable")
    return [(int(d[i[k], j[k]]), int(i[k]), int(j[k])) for k in order]


def match(query: Query, stored: Stored, tries: int = 4) -> tuple[bool, dict]:
    """Whether `stored` is the source of `query` (a crop, border, letterbox, caption or small
    turn of it): the best `tries` candidate hypotheses are confirmed in turn; (matched, the
    figures of the best one) for the detail page's reason."""
    best = {}
    seen = set()
    for dist, i, j in candidates(query, stored):
        name, angle = stored.forms[j]
        key = (name, tuple(np.round(query.rects[i] / 4)))
        if key in seen:
            continue
        seen.add(key)
        score, where = confirm_both(query.grey, query.rects[i], -angle, stored.thumbs[name])
        colour = chroma_distance(query.chroma, where, stored, name)
        content = content_score(query.grey, where, stored, name)
        figures = {
            "bits": dist,
            "form": name,
            "angle": where[1],
            "correlation": score,
            "colour": colour,
            "content": content,
            "rect": where[0],
        }
        if score >= CONFIRM_MIN and colour <= CHROMA_MAX and content >= CONTENT_MIN:
            return True, figures
        if not best or score > best["correlation"]:
            best = figures
        if len(seen) >= tries:
            break
    return False, best
