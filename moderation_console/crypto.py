"""Encryption of secrets stored in the database (Fernet: AES-128-CBC with an HMAC-SHA256 tag).

The key comes from settings.FIELD_ENCRYPTION_KEY. It may list several keys separated by
commas: the first encrypts, every one decrypts, so a key can be rotated without a migration
(add the new key first, re-save the secrets, then drop the old key).
"""

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class DecryptionError(Exception):
    """A stored value cannot be decrypted: the key changed, or the value was tampered with."""


def encrypt(plaintext: str) -> str:
    return _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "cannot decrypt a stored secret: was FIELD_ENCRYPTION_KEY changed?"
        ) from None


@functools.cache
def _fernet(keys: str) -> MultiFernet:
    # Cached per setting value, so tests that override the setting get their own instance.
    try:
        return MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])
    except ValueError as error:  # also MultiFernet([]) for an empty setting
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be one or more Fernet keys (32 url-safe base64-encoded "
            f"bytes, comma-separated): {error}"
        ) from None
