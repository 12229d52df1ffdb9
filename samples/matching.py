"""The one place that judges two items similar: propagation (results like a decided one) and
scanning (samples like a new item) both call it, so a better matcher improves both.

Fingerprints are rows (audit.ResultFingerprint, samples.SampleFingerprint): exact hashes and
text band keys are looked up in the database by `key`; 256-bit PDQ codes are searched in an
in-memory exact Hamming index (samples.index) kept in step with those rows.
"""

from dataclasses import dataclass

from django.core.files.storage import default_storage
from django.utils import timezone

from audit.models import MediaType, Result, ResultFingerprint
from samples import fingerprints, index
from samples.fingerprint_base import FingerprintKind as Kind

DEFAULT_PDQ_DISTANCE = 31
VIDEO_FRAME_SHARE = 0.5
SEARCH_LIMIT = 1000  # similar results one decision may touch at most


@dataclass(frozen=True)
class Match:
    id: int  # of the result or sample
    distance: int  # Hamming bits for images and videos; 0 for an exact or text match
    matched_by: str  # "exact", "pdq", "flip-h", "text", "text-near", "video-file", ...


def key_of(digest: bytes | str) -> int:
    """A signed 64-bit key (a PostgreSQL bigint) from the front of a hash."""
    raw = bytes.fromhex(digest) if isinstance(digest, str) else digest
    return int.from_bytes(raw[:8], "big", signed=True)


# Computing fingerprint rows ------------------------------------------------------------------


def image_rows(data: bytes) -> list[dict]:
    fp = fingerprints.image_fingerprint(data)
    rows = [
        {"kind": Kind.IMAGE_EXACT, "key": key_of(fp.exact)},
        {"kind": Kind.PDQ, "key": key_of(fp.pdq), "code": fp.pdq, "quality": fp.quality},
    ]
    rows += [
        {"kind": Kind.PDQ_VARIANT, "code": code, "quality": fp.quality, "form": form}
        for form, code in zip(fingerprints.VARIANT_FORMS, fp.variants, strict=True)
    ]
    return rows


def text_rows(text: str) -> list[dict]:
    fp = fingerprints.text_fingerprint(text)
    rows = [{"kind": Kind.TEXT_EXACT, "key": key_of(fp.exact)}]
    rows += [{"kind": Kind.TEXT_BAND, "key": key} for key in fingerprints.text_band_keys(fp)]
    if fp.minhash:
        rows.append({"kind": Kind.TEXT_MINHASH, "code": fingerprints.minhash_pack(fp.minhash)})
    return rows


def video_rows(path: str) -> list[dict]:
    fp = fingerprints.video_fingerprint(path)
    rows = [{"kind": Kind.VIDEO_FILE, "key": key_of(fp.file_hash)}]
    rows += [
        {"kind": Kind.VIDEO_FRAME, "code": code, "quality": quality}
        for code, quality in zip(fp.frames, fp.qualities, strict=True)
    ]
    return rows


def result_rows(result: Result) -> list[dict]:
    """Fingerprint rows of a result's content; none while its media is not stored yet."""
    if result.media_type == MediaType.TEXT:
        return text_rows(result.text)
    if not result.file:
        return []
    if result.media_type == MediaType.IMAGE:
        with default_storage.open(result.file.name, "rb") as f:
            return image_rows(f.read())
    return video_rows(default_storage.path(result.file.name))


# Where fingerprints live ------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """Fingerprint rows of results or of samples, and the model they describe."""

    name: str
    rows: type  # ResultFingerprint or SampleFingerprint
    owner_field: str
    owners: type  # Result or Sample

    def owners_of(self, **lookup) -> set[int]:
        return set(self.rows.objects.filter(**lookup).values_list(self.owner_field, flat=True))

    def index(self, kinds: tuple[str, ...]) -> index.SyncedIndex:
        def build():
            def fetch_since(last_id: int, limit: int):
                rows = self.rows.objects.filter(id__gt=last_id, kind__in=kinds).order_by("id")
                values = rows.values_list("id", self.owner_field, "code")[:limit]
                return [(i, owner, bytes(code)) for i, owner, code in values]

            # Removed owners stay in the index until the daily rebuild: candidates are always
            # re-read from the database, so a stale entry only costs a lookup.
            return index.SyncedIndex(fetch_since=fetch_since, removed_marker=_today)

        return index.get_index(f"{self.name}:{','.join(kinds)}", build)


def _today():
    return timezone.now().date()


RESULTS = Store("results", ResultFingerprint, "result_id", Result)


def samples_store() -> Store:
    from samples.models import Sample, SampleFingerprint

    return Store("samples", SampleFingerprint, "sample_id", Sample)


# Finding similar items --------------------------------------------------------------------------


def similar(
    store: Store,
    media_type: str,
    rows: list,
    text: str = "",
    distance: int = DEFAULT_PDQ_DISTANCE,
    fresh: bool = False,
) -> dict[int, Match]:
    """Owners in `store` whose fingerprints match `rows` (dicts or fingerprint rows).

    `fresh` makes the in-memory index catch up with the database first (propagation, which
    must see what arrived a moment ago); otherwise it may lag by a second (scanning).
    """
    rows = [r if isinstance(r, dict) else row_as_dict(r) for r in rows]
    finder = {
        MediaType.IMAGE: _images_similar,
        MediaType.TEXT: _texts_similar,
        MediaType.VIDEO: _videos_similar,
    }[media_type]
    return finder(store, rows, text, distance, fresh)


def results_similar(result: Result, *, distance: int = DEFAULT_PDQ_DISTANCE) -> list[Match]:
    """Results in the store like `result`: same content type and biz type, itself excluded."""
    rows = list(result.fingerprints.all())
    matches = similar(RESULTS, result.media_type, rows, result.text, distance, fresh=True)
    same_kind = set(
        Result.objects.filter(
            id__in=list(matches), media_type=result.media_type, biz_type=result.biz_type
        )
        .exclude(id=result.id)
        .values_list("id", flat=True)
    )
    found = [m for i, m in matches.items() if i in same_kind]
    return sorted(found, key=lambda m: (m.distance, m.id))[:SEARCH_LIMIT]


def row_as_dict(row) -> dict:
    """A stored fingerprint row (of a result or a sample) in the shape the finders take."""
    code = bytes(row.code) if row.code is not None else None
    return {
        "kind": row.kind,
        "key": row.key,
        "code": code,
        "quality": row.quality,
        "form": row.form,
    }


def _keep_best(matches: dict[int, Match], match: Match) -> None:
    if match.id not in matches or match.distance < matches[match.id].distance:
        matches[match.id] = match


def _keys(rows: list[dict], kind: str) -> list[int]:
    return [r["key"] for r in rows if r["kind"] == kind]


def _exact(store: Store, kind: str, keys: list[int], matched_by: str) -> dict[int, Match]:
    if not keys:
        return {}
    return {i: Match(i, 0, matched_by) for i in store.owners_of(kind=kind, key__in=keys)}


def _images_similar(store, rows, text, distance, fresh) -> dict[int, Match]:
    matches = _exact(store, Kind.IMAGE_EXACT, _keys(rows, Kind.IMAGE_EXACT), "exact")
    if store.name == "samples":
        # Samples carry their flipped/rotated forms: the query's own PDQ meets all of them.
        kinds, queries = (Kind.PDQ, Kind.PDQ_VARIANT), [r for r in rows if r["kind"] == Kind.PDQ]
    else:
        # Results carry only their own PDQ: the query's forms go to them instead.
        kinds = (Kind.PDQ,)
        queries = [r for r in rows if r["kind"] in (Kind.PDQ, Kind.PDQ_VARIANT)]
    if not queries:
        return matches
    # The forms of one picture share its quality, so one distance serves the whole batch.
    limit = fingerprints.pdq_threshold(queries[0].get("quality") or 0, distance)
    found = store.index(kinds).search_many([r["code"] for r in queries], limit, fresh=fresh)
    for row, hits in zip(queries, found, strict=True):
        for owner, bits in hits:
            _keep_best(matches, Match(owner, bits, row.get("form") or "pdq"))
    return matches


def _texts_similar(store, rows, text, distance, fresh) -> dict[int, Match]:
    matches = _exact(store, Kind.TEXT_EXACT, _keys(rows, Kind.TEXT_EXACT), "text")
    bands = _keys(rows, Kind.TEXT_BAND)
    mine = next((r["code"] for r in rows if r["kind"] == Kind.TEXT_MINHASH), None)
    if not bands or mine is None:
        return matches
    # A shared band key makes a candidate; the stored signatures then estimate the similarity
    # without reading or re-hashing the candidates' texts.
    candidates = list(store.owners_of(kind=Kind.TEXT_BAND, key__in=bands) - set(matches))
    signatures = list(
        store.rows.objects.filter(
            kind=Kind.TEXT_MINHASH, **{f"{store.owner_field}__in": candidates[: SEARCH_LIMIT * 5]}
        ).values_list(store.owner_field, "code")
    )
    scores = fingerprints.minhash_similarities(mine, [bytes(code) for _, code in signatures])
    for (owner, _), score in zip(signatures, scores, strict=True):
        if score >= fingerprints.TEXT_THRESHOLD:
            _keep_best(matches, Match(owner, 0, "text-near"))
    return matches


def _videos_similar(store, rows, text, distance, fresh) -> dict[int, Match]:
    matches = _exact(store, Kind.VIDEO_FILE, _keys(rows, Kind.VIDEO_FILE), "video-file")
    frames = [r for r in rows if r["kind"] == Kind.VIDEO_FRAME]
    if not frames:
        return matches
    searcher = store.index((Kind.VIDEO_FRAME,))
    hits: dict[int, set[int]] = {}
    best: dict[int, int] = {}
    for n, row in enumerate(frames):
        limit = fingerprints.pdq_threshold(row.get("quality") or 0, distance)
        for owner, bits in searcher.search(row["code"], limit, fresh=fresh):
            hits.setdefault(owner, set()).add(n)
            best[owner] = min(best.get(owner, bits), bits)
    for owner, matched in hits.items():
        if len(matched) / len(frames) >= VIDEO_FRAME_SHARE:
            _keep_best(matches, Match(owner, best[owner], "video-frames"))
    return matches


# Loading the indexes ahead of use ---------------------------------------------------------------


def indexes_warm_up() -> None:
    """Load every index the finders above search: both stores' images and video frames.

    Through the finders themselves, with a made-up code, so that these are always the indexes
    (store and kinds) that propagation and scanning search.
    """
    probe = bytes(range(32))
    image = {"kind": Kind.PDQ, "code": probe, "quality": 100}
    frame = {"kind": Kind.VIDEO_FRAME, "code": probe, "quality": 100}
    for store in (RESULTS, samples_store()):
        similar(store, MediaType.IMAGE, [image])
        similar(store, MediaType.VIDEO, [frame])
