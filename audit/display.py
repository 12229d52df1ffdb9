"""How a result is shown to a reviewer: flagged words, frames, time left. No HTML here; the
templates escape everything (all of it is untrusted client text)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from audit.models import SUGGESTION_SEVERITY, Result


@dataclass(frozen=True)
class Segment:
    text: str
    label: str | None  # the hit's label, None for plain text


@dataclass(frozen=True)
class VideoFrame:
    offset: float
    hits: list[dict]  # [{scene, label, rate, suggestion?}]

    @property
    def flags(self) -> list[dict]:
        """The hits that flag something (the machine's "normal" labels left out)."""
        return [hit for hit in self.hits if hit.get("label") != "normal"]


def scene_rows(result: Result) -> list[dict]:
    """Scene results, worst first."""
    return sorted(
        result.scene_results,
        key=lambda r: (-SUGGESTION_SEVERITY[r["suggestion"]], -r["rate"]),
    )


def text_segments(text: str, scene_results: list[dict]) -> list[Segment]:
    """The text cut into plain and flagged segments, from the hits' positions (or, where a
    hit has none, every occurrence of its context)."""
    spans = _hit_spans(text, scene_results)
    segments, position = [], 0
    for start, end, label in spans:
        if start < position:  # overlapping hits: the earlier one wins
            continue
        if start > position:
            segments.append(Segment(text[position:start], None))
        segments.append(Segment(text[start:end], label))
        position = end
    if position < len(text):
        segments.append(Segment(text[position:], None))
    return segments


def _hit_spans(text: str, scene_results: list[dict]) -> list[tuple[int, int, str]]:
    spans = []
    for result in scene_results:
        for detail in result.get("details") or []:
            for context in detail.get("contexts") or []:
                spans += _context_spans(text, context, detail.get("label", ""))
    return sorted(set(spans))


def _context_spans(text: str, context: dict, label: str) -> list[tuple[int, int, str]]:
    positions = context.get("positions") or []
    spans = [
        (p["startPos"], p["endPos"], label)
        for p in positions
        if 0 <= p["startPos"] < p["endPos"] <= len(text)
    ]
    word = context.get("context") or ""
    if not positions and word:
        start = text.find(word)
        while start != -1:
            spans.append((start, start + len(word), label))
            start = text.find(word, start + len(word))
    return spans


def video_frames(result: Result) -> list[VideoFrame]:
    """Video frames with their labels, from the frames list and the per-scene frame hits."""
    hits: dict[float, list[dict]] = {}
    for frame in result.frames or []:
        for hit in frame.get("results") or []:
            hits.setdefault(float(frame["offset"]), []).append(hit)
        hits.setdefault(float(frame["offset"]), [])
    for scene in result.scene_results:
        for frame in scene.get("frames") or []:
            hit = {
                "scene": scene["scene"],
                "label": frame.get("label", scene["label"]),
                "rate": frame.get("rate", scene["rate"]),
            }
            hits.setdefault(float(frame["offset"]), []).append(hit)
    return [VideoFrame(offset, hits[offset]) for offset in sorted(hits)]


def time_left(result: Result, now: datetime) -> timedelta:
    return max(result.expires_at - now, timedelta(0))


def time_left_text(left: timedelta) -> str:
    hours = int(left.total_seconds() // 3600)
    if hours >= 24:
        return f"{hours // 24}d {hours % 24}h left"
    minutes = int(left.total_seconds() // 60) % 60
    return f"{hours}h {minutes:02d}m left"
