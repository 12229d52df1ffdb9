"""The shape of a fingerprint row, shared by results (audit) and samples. Kept apart from
samples.models so that audit.models can use it without importing the samples app's models."""

from django.db import models


class FingerprintKind(models.TextChoices):
    """One row per fingerprint, so a new kind needs no schema change (see shared/DESIGN.md)."""

    IMAGE_EXACT = "image_exact", "Image: exact pixels"
    IMAGE_FLAT = "image_flat", "Image: exact pixels of a flat picture"
    PDQ = "pdq", "Image: PDQ"
    PDQ_VARIANT = "pdq_variant", "Image: PDQ of a flipped or rotated form"
    PDQ_CROP = "pdq_crop", "Image: PDQ of a cropped or trimmed form"
    CROP_CODE = "crop_code", "Image: layout code of a central region (crophash)"
    CROP_THUMB = "crop_thumb", "Image: thumbnails that confirm a crophash match"
    TEXT_EXACT = "text_exact", "Text: normalized exact"
    TEXT_BAND = "text_band", "Text: MinHash band"
    TEXT_MINHASH = "text_minhash", "Text: MinHash signature"
    VIDEO_FILE = "video_file", "Video: file hash"
    VIDEO_FRAME = "video_frame", "Video: PDQ of a frame"


# The kinds whose rows the in-memory indexes load by id (samples.matching, samples.index): the
# result store's (kind, id) index holds these rows only. Text bands (half the rows of a day)
# and other rows read by key or by owner would double its size, and every byte of a day's
# partition costs its drop at the purge. samples.matching refuses to index another kind.
INDEXED_KINDS = (
    FingerprintKind.IMAGE_FLAT,
    FingerprintKind.PDQ,
    FingerprintKind.PDQ_VARIANT,
    FingerprintKind.PDQ_CROP,
    FingerprintKind.CROP_CODE,
    FingerprintKind.VIDEO_FRAME,
)


class FingerprintFields(models.Model):
    """The columns every fingerprint row has: a `key` to look up in the database (a hash
    prefix or band key) and/or a `code`: a 256-bit PDQ code for Hamming search in memory, or a
    text's MinHash signature."""

    kind = models.CharField(max_length=12, choices=FingerprintKind.choices)
    key = models.BigIntegerField(null=True, blank=True)
    # 32 bytes (a PDQ code), an image's thumbnail (192 bytes, on its exact or flat row), a
    # packed MinHash signature (512 bytes), a crophash code and its colour code (12 bytes) or
    # the thumbnails that confirm one (~2.5 KB: max_length only bounds forms, not the column).
    code = models.BinaryField(max_length=512, null=True, blank=True)
    quality = models.PositiveSmallIntegerField(null=True, blank=True)
    # Which dihedral form a variant is, or which cropped form (fingerprints.CROP_FORMS).
    form = models.CharField(max_length=12, blank=True)

    class Meta:
        abstract = True
