"""The built-in text engine: the keyword library, matched on normalized text."""

from audit.models import SUGGESTION_SEVERITY
from samples import fingerprints
from samples.models import Keyword


def keyword_results(text: str) -> list[dict]:
    """The v1 `antispam` result for `text`: the worst keyword hit, with every hit in details;
    `normal`/`pass` without one."""
    hits = _hits(text)
    if not hits:
        return [{"scene": "antispam", "label": "normal", "suggestion": "pass", "rate": 99.0}]
    worst = max(hits, key=lambda k: SUGGESTION_SEVERITY[k.suggestion])
    details: dict[str, list[dict]] = {}
    for keyword in hits:
        details.setdefault(keyword.label, []).append(_context(text, keyword.text))
    return [
        {
            "scene": "antispam",
            "label": worst.label,
            "suggestion": worst.suggestion,
            "rate": 99.0,
            "details": [{"label": label, "contexts": c} for label, c in details.items()],
        }
    ]


def keyword_in(word: str, normalized: str) -> bool:
    """The engine's rule: a keyword hits a text when its normalized form (word, not empty)
    is in the normalized text (both by fingerprints.text_normalize)."""
    return bool(word) and word in normalized


def _hits(text: str) -> list[Keyword]:
    normalized = fingerprints.text_normalize(text)
    return [
        keyword
        for keyword in Keyword.objects.filter(enabled=True).only("text", "label", "suggestion")
        if keyword_in(fingerprints.text_normalize(keyword.text), normalized)
    ]


def _context(text: str, word: str) -> dict:
    # Positions only where the keyword stands as written; an obfuscated hit has none.
    start = text.casefold().find(word.casefold())
    if start < 0:
        return {"context": word}
    end = start + len(word)
    return {"context": text[start:end], "positions": [{"startPos": start, "endPos": end}]}
