"""The one place that judges two items similar: propagation (results like a decided one) and
scanning (samples like a new item) both call it, so a better matcher improves both.

Fingerprints are rows (audit.ResultFingerprint, samples.SampleFingerprint): exact hashes and
text band keys are looked up in the database by `key`; 256-bit PDQ codes are searched in an
in-memory exact Hamming index (samples.index) kept in step with those rows, and so are the
layout codes of flat pictures, computed from their stored thumbnails, and the PDQ codes of
images' cropped and trimmed forms (an index of their own, multi-index hashing once large).
Image candidates a little beyond the PDQ match distance, and flat pictures found by layout,
are confirmed by their thumbnails; candidates found by a cropped form by their stored cropped
forms (see fingerprints.image_similar, which judges a pair the same way). Last, crophash
(samples.crophash): the low-frequency layout codes of each stored picture's central region, in
a compiled multi-index (samples.codeindex), met by the query's grid of crop hypotheses; the
nearest candidates are confirmed by aligning their stored thumbnails in the query's picture,
which the query brings in memory (ImageRows.crop_query), or which is decoded again from a
stored result's file.
"""

import logging
from contextlib import suppress
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Max
from django.utils import timezone

from audit.media import MediaError
from audit.models import MediaType, Result, ResultFingerprint
from samples import codeindex, crophash, fingerprints, index, multihash
from samples.fingerprint_base import INDEXED_KINDS
from samples.fingerprint_base import FingerprintKind as Kind

logger = logging.getLogger(__name__)

DEFAULT_PDQ_DISTANCE = 31
VIDEO_FRAME_SHARE = 0.5
SEARCH_LIMIT = 1000  # similar results one decision may touch at most
EXACT_KINDS = (Kind.IMAGE_EXACT, Kind.IMAGE_FLAT)  # an image's exact hash and thumbnail
# Thumbnail comparisons (a candidate in one form) one image search makes at most, nearest
# candidates first: 128 take ~7 ms.
THUMB_PAIRS = 128
OVERLAP_IDS = 1000  # as samples.index.SyncedIndex's default
# Owners found by a cropped form whose stored forms are read and judged, nearest first.
CROP_CANDIDATES = 200
# Owners found by a crophash code whose thumbnails are read and aligned, nearest code first
# (a confirm takes ~0.4-1 ms). Look-alikes of one template can outnumber it (see
# research/issue8_crophash/REPORT.md, "Candidates per query").
CROPHASH_CANDIDATES = 24


@dataclass(frozen=True)
class Match:
    id: int  # of the result or sample
    # Hamming bits for images (of the layout code for "layout") and videos; 0 for an exact or
    # text match.
    distance: int
    matched_by: str  # "exact", "pdq", "flip-h", "text", "text-near", "video-file", ...


# How each way of matching reads to a reviewer (the detail page's "why"): "{bits}" is the
# distance of the Match.
_FORM_NAMES = {
    "flip-h": "flipped left to right",
    "flip-v": "flipped upside down",
    "rot90": "turned a quarter",
    "rot180": "turned upside down",
    "rot270": "turned three quarters",
    "transpose": "flipped along its diagonal",
    "transverse": "flipped along its other diagonal",
}
_REASONS = {
    "exact": "the same picture: identical pixels, whatever the file format",
    "pdq": "a near copy: PDQ hashes {bits} of 256 bits apart",
    "layout": "a near copy of a flat picture: layout codes {bits} bits apart, thumbnails agree",
    "text": "the same text once normalized (case, look-alike letters, spacing, invisible "
    "characters)",
    "text-near": "a near-duplicate text: most of its character shingles are shared (MinHash)",
    "video-file": "the same video file",
    "video-frames": "a copy of the video: at least half its frames match, the closest "
    "{bits} of 256 bits apart",
}
# The cropped forms (fingerprints.CROP_FORMS) in words, and what a pair of them looks like.
_CROP_NAMES = {
    "whole": "the whole picture",
    "trim": "the picture without its borders and caption bars",
    "btrim": "the picture without its borders",
    "soft": "the picture without its plain or blurred borders",
    "c95": "the central 95%",
    "c90": "the central 90%",
    "c85": "the central 85%",
    "c80": "the central 80%",
    "c85r+2": "the central 85% turned 2° anticlockwise",
    "c85r-2": "the central 85% turned 2° clockwise",
    "c80r+5": "the central 80% turned 5° anticlockwise",
    "c80r-5": "the central 80% turned 5° clockwise",
}


def _crop_reason(forms: str, distance: int) -> str | None:
    query, _, stored = forms.partition("~")
    if query not in _CROP_NAMES or stored not in _CROP_NAMES:
        return None
    pair = {query, stored}
    if any("r+" in form or "r-" in form for form in pair):
        what = "a slightly turned copy"
    elif pair & {"trim", "btrim", "soft"}:
        what = "a copy with borders, bars or a caption added or removed"
    elif pair != {"whole"}:
        what = "a cropped copy"
    else:
        what = "a near copy at a smaller scale"
    return (
        f"{what}: {_CROP_NAMES[query]} of one matches {_CROP_NAMES[stored]} of the other "
        f"within {distance} bits (PDQ)"
    )


def match_reason(matched_by: str, distance: int) -> str:
    """Why two items matched, in words, from a Match's (or a DecisionTarget's) fields."""
    if matched_by.startswith(CROPHASH_PREFIX):
        edit = matched_by.removeprefix(CROPHASH_PREFIX) or "edited"
        return (
            f"a {edit} copy: the layout codes of their central regions are {distance} of 63 "
            f"bits apart, and the pictures agree once aligned (crophash)"
        )
    if "~" in matched_by and (reason := _crop_reason(matched_by, distance)):
        return reason
    if matched_by in _FORM_NAMES:
        return (
            f"a {_FORM_NAMES[matched_by]} copy: its PDQ hash is {distance} of 256 bits from "
            f"that form's"
        )
    reason = _REASONS.get(matched_by)
    return reason.format(bits=distance) if reason else matched_by


CROPHASH_PREFIX = "crop:"  # matched_by of a crophash match: "crop:<edit it looks like>"


def key_of(digest: bytes | str) -> int:
    """A signed 64-bit key (a PostgreSQL bigint) from the front of a hash."""
    raw = bytes.fromhex(digest) if isinstance(digest, str) else digest
    return int.from_bytes(raw[:8], "big", signed=True)


# Computing fingerprint rows ------------------------------------------------------------------


class ImageRows(list):
    """An image's fingerprint rows, and (not stored) what a crophash search from it needs: its
    picture and query codes, (CropPicture, CropQuery), or None."""

    crop_query: tuple | None = None


def image_rows(data: bytes, *, query: bool = True) -> ImageRows:
    """An image's fingerprint rows; with `query`, and its crophash query (a search from it)."""
    fp = fingerprints.image_fingerprint(data, query=query)
    rows = [
        # The exact row also keeps the thumbnail that confirms near matches. A flat picture's
        # (unreliable PDQ) has a kind of its own: its thumbnail's layout codes are indexed too.
        {
            "kind": Kind.IMAGE_FLAT if fp.flat else Kind.IMAGE_EXACT,
            "key": key_of(fp.exact),
            "code": fp.thumb,
            "quality": fp.quality,
        },
        {"kind": Kind.PDQ, "key": key_of(fp.pdq), "code": fp.pdq, "quality": fp.quality},
    ]
    rows += [
        {"kind": Kind.PDQ_VARIANT, "code": code, "quality": fp.quality, "form": form}
        for form, code in zip(fingerprints.VARIANT_FORMS, fp.variants, strict=True)
    ]
    rows += [
        {"kind": Kind.PDQ_CROP, "code": code, "quality": quality, "form": form}
        for form, code, quality in fp.crops
    ]
    if fp.crop_stored is not None:
        stored = fp.crop_stored
        rows += [
            {"kind": Kind.CROP_CODE, "code": crophash.code_bytes(int(c), int(col)), "form": form}
            for form, c, col in zip(stored.forms, stored.codes, stored.colours, strict=True)
        ]
        rows.append({"kind": Kind.CROP_THUMB, "code": stored.thumbs})
    found = ImageRows(rows)
    found.crop_query = fp.crop_query
    return found


def with_crop_query(rows: list, data: bytes) -> ImageRows:
    """Stored rows of an image, given the crophash query of its file's bytes (`data`)."""
    found = ImageRows(row if isinstance(row, dict) else row_as_dict(row) for row in rows)
    with suppress(MediaError):  # as image_crop_query: matched the other ways only
        found.crop_query = fingerprints.image_crop_query(data, holds_crops=True)
    return found


def image_crop_query(name: str, *, holds_crops: bool = True) -> tuple | None:
    """The crophash query of a stored image file (a result's or a sample's), None if it is
    gone or unreadable: the other ways of matching still apply. `holds_crops` (as
    crophash.query_codes): a decided item's search reaches its cropped copies too, not only
    the pictures it is an edit of."""
    try:
        with default_storage.open(name, "rb") as f:
            return fingerprints.image_crop_query(f.read(), holds_crops=holds_crops)
    except (OSError, MediaError):
        return None


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
            return image_rows(f.read(), query=False)  # stored, not searched from
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

    def index(
        self,
        kinds: tuple[str, ...],
        *,
        forms: tuple[str, ...] = (),
        multi_hash_from: int | None = None,
        index_factory=None,
        form_keyed: bool = False,
    ) -> index.SyncedIndex:
        """The codes of the rows of `kinds` (of those `forms` only, if given), searched by
        multi-index hashing from multi_hash_from codes on (samples.index.HashIndex), or by the
        index `index_factory` makes. `form_keyed`: an entry's id names the row's form too
        (form_key), not only its owner."""

        def build():
            _indexed(kinds)

            def rows_since(since: int):
                rows = self.rows.objects.filter(id__gt=since, kind__in=kinds)
                if forms:
                    rows = rows.filter(form__in=forms)
                return rows.order_by("id").values_list("id", self.owner_field, "code", "form")

            def entries(values):
                if not form_keyed:
                    return [(i, owner, bytes(code)) for i, owner, code, _ in values]
                return [
                    (i, form_key(owner, forms.index(form), forms), bytes(code))
                    for i, owner, code, form in values
                ]

            # Removed owners stay in the index until the daily rebuild: candidates are always
            # re-read from the database, so a stale entry only costs a lookup.
            return index.SyncedIndex(
                fetch_since=self.reader(rows_since, entries),
                removed_marker=_today,
                overlap_ids=OVERLAP_IDS,
                multi_hash_from=multi_hash_from,
                index_factory=index_factory,
            )

        name = f"{self.name}:{','.join(kinds)}" + (f":{','.join(forms)}" if forms else "")
        name += ":keyed" if form_keyed else ""
        return index.get_index(name, build)

    def reader(self, rows_since, entries) -> "RowReader":
        """A SyncedIndex's fetch_since over some of these rows (see RowReader)."""
        return RowReader(self.rows, rows_since, entries)


class RowReader:
    """fetch_since for a SyncedIndex over some of a store's rows: rows_since(since) is their
    queryset of values with an id over `since`, ascending, the row id first; entries(values)
    the index's (row id, id, code) of those.

    It reads on from where its last read ended, less the overlap the index allows for ids
    committed out of order, not from its own last row: rows of its kinds may be few among the
    latest (flat pictures; images among texts), and every refresh would read all the rows
    since again (0.45 s a search with 500,000 of them). SyncedIndex calls restart() before a
    rebuild, which reads everything."""

    def __init__(self, rows, rows_since, entries) -> None:
        self._rows, self._rows_since, self._entries = rows, rows_since, entries
        self._read_up_to = 0  # the rows up to this id were read already

    def restart(self) -> None:
        self._read_up_to = 0

    def __call__(self, last_id: int, limit: int) -> list:
        top = self._rows.objects.aggregate(top=Max("id"))["top"] or 0
        since = max(last_id, self._read_up_to - OVERLAP_IDS)
        values = list(self._rows_since(since)[:limit])
        self._read_up_to = values[-1][0] if len(values) == limit else top
        return self._entries(values)


def _indexed(kinds) -> None:
    """Refuse to load a kind by id that the result store's (kind, id) index leaves out: every
    load and refresh would scan the store."""
    if missing := set(kinds) - set(INDEXED_KINDS):
        raise ValueError(f"{sorted(missing)} not in fingerprint_base.INDEXED_KINDS")


def form_key(owner: int, form: int, forms: tuple[str, ...]) -> int:
    """The index id of an owner's code of forms[form] (Store.index with `forms`)."""
    return owner * len(forms) + form


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
    crop_query: tuple | None = None,
) -> dict[int, Match]:
    """Owners in `store` whose fingerprints match `rows` (dicts or fingerprint rows).

    `fresh` makes the in-memory index catch up with the database first (propagation, which
    must see what arrived a moment ago); otherwise it may lag by a second (scanning).
    `crop_query`: an image's crophash query (image_rows gives it with the rows, image_crop_query
    from a stored file); without one, crophash is not searched.
    """
    crop_query = crop_query or getattr(rows, "crop_query", None)
    rows = [r if isinstance(r, dict) else row_as_dict(r) for r in rows]
    if media_type == MediaType.IMAGE:
        return _images_similar(store, rows, distance, fresh, crop_query)
    finder = {MediaType.TEXT: _texts_similar, MediaType.VIDEO: _videos_similar}[media_type]
    return finder(store, rows, text, distance, fresh)


def results_similar(result: Result, *, distance: int = DEFAULT_PDQ_DISTANCE) -> list[Match]:
    """Results in the store like `result`: same content type and biz type, itself excluded."""
    rows = list(result.fingerprints.all())
    query = None
    if result.media_type == MediaType.IMAGE and result.file:
        query = image_crop_query(result.file.name)
    matches = similar(RESULTS, result.media_type, rows, result.text, distance, True, query)
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


def _images_similar(store, rows, distance, fresh, crop_query) -> dict[int, Match]:
    """As fingerprints.image_similar, with the query's rows on one side and the store's on the
    other: PDQ hits within reach of the outright distance, and flat stored pictures found by
    their layout codes, are confirmed by their stored thumbnails."""
    keys = [r["key"] for r in rows if r["kind"] in EXACT_KINDS]
    exact = store.owners_of(kind__in=EXACT_KINDS, key__in=keys) if keys else set()
    matches = {owner: Match(owner, 0, "exact") for owner in exact}
    # Rows stored before thumbnails were kept have none: then PDQ alone, as it was.
    thumb = next((r["code"] for r in rows if r["kind"] in EXACT_KINDS), None)
    near = _pdq_near(store, rows, distance, fresh, thumb is not None, matches)
    laid_out = _layout_near(store, thumb, fresh) if thumb is not None else {}
    quality = next((r.get("quality") or 0 for r in rows if r["kind"] == Kind.PDQ), 0)
    _images_confirm(store, thumb, quality, distance, near, laid_out, matches)
    if settings.IMAGE_CROP_MATCHING:
        _crops_similar(store, rows, distance, fresh, matches)
        if crop_query is not None:
            _crophash_similar(store, crop_query, distance, fresh, matches)
    return matches


def _crops_similar(store, rows, distance, fresh, matches) -> None:
    """Owners not matched otherwise whose cropped forms meet the query's (a cropped, bordered,
    captioned or turned copy): found through the index of stored cropped forms, then judged
    by all their stored cropped forms as fingerprints.crop_comparison does."""
    mine = tuple(
        (r["form"], r["code"], r.get("quality") or 0)
        for r in rows
        if r["kind"] == Kind.PDQ_CROP and r["form"] in fingerprints.CROP_QUERY_FORMS
    )
    if not mine:
        return
    reach = min(
        fingerprints.CROP_DISTANCE, fingerprints.CROP_DISTANCE + distance - DEFAULT_PDQ_DISTANCE
    )
    informative = [q[1] for q in mine if q[2] >= fingerprints.CROP_MIN_QUALITY]
    flat = [q[1] for q in mine if q[2] < fingerprints.CROP_MIN_QUALITY]
    searched = crop_index(store)
    found = searched.search_many(informative, reach, fresh=fresh) if informative else []
    if flat:  # a form of little gradient matches closer copies only (see crop_comparison)
        low = min(reach, fingerprints.CROP_LOW_QUALITY_DISTANCE)
        found += searched.search_many(flat, low, fresh=fresh and not informative)
    nearest: dict[int, int] = {}
    for hits in found:
        for owner, bits in hits:
            if owner not in matches:
                nearest[owner] = min(bits, nearest.get(owner, bits))
    candidates = sorted(nearest, key=lambda owner: (nearest[owner], owner))[:CROP_CANDIDATES]
    if not candidates:
        return
    stored: dict[int, list] = {}
    for owner, form, code, quality in store.rows.objects.filter(
        kind=Kind.PDQ_CROP,
        form__in=fingerprints.CROP_STORED_FORMS,
        **{f"{store.owner_field}__in": candidates},
    ).values_list(store.owner_field, "form", "code", "quality"):
        stored.setdefault(owner, []).append((form, bytes(code), quality or 0))
    for owner, theirs in stored.items():
        if hit := fingerprints.crop_comparison(mine, tuple(theirs), distance):
            _keep_best(matches, Match(owner, *hit))


# From this many codes on, the index of cropped forms is searched by multi-index hashing
# (samples.index.MULTI_HASH_FROM; a flat scan is as fast below it), unless the setting
# CROP_INDEX_MULTI_HASH turns it off for its memory. The PDQ and video frame indexes switch
# at MULTI_HASH_FROM always.
CROP_MULTI_HASH_FROM = index.MULTI_HASH_FROM


def crop_index(store: Store) -> index.SyncedIndex:
    """The store's cropped forms that queries are compared with (CROP_STORED_FORMS)."""
    return store.index(
        (Kind.PDQ_CROP,),
        forms=fingerprints.CROP_STORED_FORMS,
        multi_hash_from=CROP_MULTI_HASH_FROM if settings.CROP_INDEX_MULTI_HASH else None,
    )


def _crophash_similar(store, crop_query, distance, fresh, matches) -> None:
    """Owners not matched otherwise that a crophash query meets: the query's codes against
    the store's crophash index, then the owners with the nearest codes confirmed by aligning
    their stored thumbnails in the query's picture (crophash.confirm)."""
    picture, query = crop_query
    # As the cropped forms' reach, it moves with a policy's PDQ distance (none under 21).
    radius = min(crophash.RADIUS, crophash.RADIUS + distance - DEFAULT_PDQ_DISTANCE)
    if radius < 0 or not len(query.codes):
        return
    forms = crophash.STORED_FORMS
    codes = crophash.code_records(query.codes, query.colours)
    found = crophash_index(store).search_many(codes, radius, fresh=fresh)
    hits: dict[int, list[tuple[int, int, str]]] = {}
    for number, pairs in enumerate(found):
        for key, bits in pairs:
            owner, form = divmod(key, len(forms))
            if owner not in matches:
                hits.setdefault(owner, []).append((bits, number, forms[form]))
    ranked = sorted(hits, key=lambda owner: (min(hits[owner])[0], owner))[:CROPHASH_CANDIDATES]
    if not ranked:
        return
    thumbs = dict(
        store.rows.objects.filter(
            kind=Kind.CROP_THUMB, **{f"{store.owner_field}__in": ranked}
        ).values_list(store.owner_field, "code")
    )
    for owner in ranked:
        if owner not in thumbs:
            continue
        pairs = [(number, form, bits) for bits, number, form in sorted(hits[owner])]
        try:
            found_match = crophash.confirm(picture, query, pairs, bytes(thumbs[owner]))
        except ValueError as error:  # a damaged row: that owner is not matched this way
            logger.warning("%s %s: crophash thumbnails unreadable: %s", store.name, owner, error)
            continue
        if found_match:
            matched_by = f"{CROPHASH_PREFIX}{found_match.edit}"[:16]
            _keep_best(matches, Match(owner, found_match.bits, matched_by))


def crophash_index(store: Store) -> index.SyncedIndex:
    """The store's crophash codes (with their colour codes), an entry per (owner, form)."""
    return store.index(
        (Kind.CROP_CODE,),
        forms=crophash.STORED_FORMS,
        index_factory=codeindex.CodeIndex,
        form_keyed=True,
    )


def _pdq_near(store, rows, distance, fresh, confirmable, matches) -> dict[int, tuple[int, str]]:
    """Owner: (bits, form) of the PDQ hits that need their row to be judged; the others (within
    LOW_QUALITY_DISTANCE, a match whatever the qualities) go straight into `matches`."""
    if store.name == "samples":
        # Samples carry their flipped/rotated forms: the query's own PDQ meets all of them.
        kinds, queries = (Kind.PDQ, Kind.PDQ_VARIANT), [r for r in rows if r["kind"] == Kind.PDQ]
    else:
        # Results carry only their own PDQ: the query's forms go to them instead.
        kinds = (Kind.PDQ,)
        queries = [r for r in rows if r["kind"] in (Kind.PDQ, Kind.PDQ_VARIANT)]
    if not queries:
        return {}
    # The forms of one picture share its quality: one reach serves the whole batch.
    limit = fingerprints.pdq_threshold(queries[0].get("quality") or 0, distance)
    reach = distance + fingerprints.PDQ_CONFIRM_MARGIN if confirmable else limit
    sure = fingerprints.pdq_threshold(0, distance)
    searched = store.index(kinds, multi_hash_from=index.MULTI_HASH_FROM)
    found = searched.search_many([r["code"] for r in queries], reach, fresh=fresh)
    near: dict[int, tuple[int, str]] = {}
    for row, hits in zip(queries, found, strict=True):
        for owner, bits in hits:
            form = row.get("form") or "pdq"
            if bits <= sure:
                _keep_best(matches, Match(owner, bits, form))
            elif owner not in near or bits < near[owner][0]:
                near[owner] = (bits, form)
    return {owner: hit for owner, hit in near.items() if owner not in matches}


def _layout_near(store, thumb: bytes, fresh) -> dict[int, dict[str, int]]:
    """Owner: {form: bits} of the stored flat pictures whose layout codes a probe met."""
    probes = fingerprints.layout_probes(thumb)
    codes = [code for _, code in probes]
    found = _layout_index(store).search_many(codes, fingerprints.LAYOUT_DISTANCE, fresh=fresh)
    laid_out: dict[int, dict[str, int]] = {}
    for (form, _), hits in zip(probes, found, strict=True):
        for owner, bits in hits:
            forms = laid_out.setdefault(owner, {})
            forms[form] = min(bits, forms.get(form, bits))
    return laid_out


def _layout_index(store: Store) -> index.SyncedIndex:
    """The layout codes of the store's flat pictures, computed from their stored thumbnails
    as they load (so the layout code can change without refingerprinting)."""

    def build():
        _indexed((Kind.IMAGE_FLAT,))

        def rows_since(since: int):
            flat = store.rows.objects.filter(id__gt=since, kind=Kind.IMAGE_FLAT, code__isnull=False)
            return flat.order_by("id").values_list("id", store.owner_field, "code")

        def entries(values):
            return [
                (i, owner, code)
                for i, owner, thumb in values
                for _, code in fingerprints.layout_codes(bytes(thumb))
            ]

        return index.SyncedIndex(
            fetch_since=store.reader(rows_since, entries),
            removed_marker=_today,
            overlap_ids=OVERLAP_IDS,
        )

    return index.get_index(f"{store.name}:layout", build)


def _images_confirm(store, thumb, quality, distance, near, laid_out, matches) -> None:
    """Judge the candidates by their stored exact rows: PDQ quality, then thumbnails, compared
    for the nearest candidates first and THUMB_PAIRS times at most."""
    nearest = sorted(laid_out, key=lambda owner: min(laid_out[owner].values()))
    owners = (set(near) | set(nearest[:THUMB_PAIRS])) - set(matches)
    if not owners:
        return
    stored = {
        owner: (bytes(code), their_quality or 0)
        for owner, code, their_quality in store.rows.objects.filter(
            kind__in=EXACT_KINDS, code__isnull=False, **{f"{store.owner_field}__in": list(owners)}
        ).values_list(store.owner_field, "code", "quality")
    }
    pending = []
    for owner in owners:
        if owner in near:
            bits, form = near[owner]
            # A picture fingerprinted before thumbnails were kept: the query's quality decides.
            their_quality = stored[owner][1] if owner in stored else quality
            if bits <= fingerprints.pdq_threshold(min(quality, their_quality), distance):
                _keep_best(matches, Match(owner, bits, form))
                continue
        if thumb is not None and owner in stored:
            order = near[owner][0] if owner in near else min(laid_out[owner].values())
            pending.append((order, owner))
    pairs, paired = [], []
    for _, owner in sorted(pending):
        # A near PDQ hash in any form: a sample's search does not tell which of its forms.
        forms = fingerprints.THUMB_FORMS if owner in near else laid_out[owner]
        if len(pairs) + len(forms) > THUMB_PAIRS:
            break
        pairs += [(stored[owner][0], form) for form in sorted(forms)]
        paired += [owner] * len(forms)
    if not pairs:
        return
    alike = fingerprints.thumb_distances(thumb, pairs) <= fingerprints.THUMB_DISTANCE
    for owner in {owner for owner, ok in zip(paired, alike, strict=True) if ok}:
        if owner in near:
            _keep_best(matches, Match(owner, *near[owner]))
        else:
            _keep_best(matches, Match(owner, min(laid_out[owner].values()), "layout"))


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
    searcher = store.index((Kind.VIDEO_FRAME,), multi_hash_from=index.MULTI_HASH_FROM)
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
    # An exact row with a thumbnail, so that the layout index of flat pictures loads too.
    exact = {"kind": Kind.IMAGE_EXACT, "key": 0, "code": bytes(range(192)), "quality": 100}
    image = {"kind": Kind.PDQ, "code": probe, "quality": 100}
    crop = {"kind": Kind.PDQ_CROP, "code": probe, "quality": 100, "form": "whole"}
    frame = {"kind": Kind.VIDEO_FRAME, "code": probe, "quality": 100}
    for store in (RESULTS, samples_store()):
        similar(store, MediaType.IMAGE, [exact, image, crop])
        similar(store, MediaType.VIDEO, [frame])
        if settings.IMAGE_CROP_MATCHING:
            crophash_index(store).refresh()
    # Compile the multi-indexes' code (cached on disk after a first run) if no load did.
    codeindex.warm_up()
    multihash.warm_up()
