"""Shared set-up for the issue 8b scripts: Django, the project's modules, file features."""

import os
import sys

sys.path.insert(0, "/work/main")
sys.path.insert(0, "/work/scratch/issue8b")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")

import django  # noqa: E402

django.setup()

import crophash  # noqa: E402

from samples import fingerprints as fp  # noqa: E402


def decoded_small(data: bytes):
    """The product's decoded picture shrunk to fp.HASH_SIZE (what image_fingerprint hashes)."""
    rgb = fp._image_decode(data)
    return fp._image_shrink(rgb, fp.HASH_SIZE)


def features(data: bytes):
    small = decoded_small(data)
    g = crophash.grey_copy(small)
    c = crophash.chroma_copy(small, g.shape)
    return crophash.stored_codes(small, g, c), crophash.query_codes(small, g, c=c)
