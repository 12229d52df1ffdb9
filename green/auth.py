"""DRF authentication by Alibaba AccessKey signatures: ROA (HMAC-SHA1, the scan SDK) and
ACS3-HMAC-SHA256 (the console SDK). A request authenticates as the key's user, with the key
as `request.auth`.

Every check fails closed with a GreenError (401 or 403 in Alibaba's envelope). Replays are
refused within the date window: a request dated more than MAX_CLOCK_SKEW away is refused, and
a nonce (or, where the SDK sends none, the signature itself) is recorded until its date
leaves the window, so a second use fails on the replay store's unique key.
"""

import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import redis
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication

from green import keystore, services, signatures
from green.errors import GreenError
from green.models import AccessKey
from moderation_console import crypto

MAX_CLOCK_SKEW = timedelta(minutes=15)
# Signed by the console SDK on every call; without them a replay could swap the nonce or date.
ACS3_REQUIRED_HEADERS = frozenset(
    {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce",
     "x-acs-content-sha256"}
)  # fmt: skip


def _unauthorized(error_code: str, message: str) -> GreenError:
    return GreenError(401, error_code, message)


def _store_unavailable(error: Exception) -> GreenError:
    return GreenError(503, "ServiceUnavailable", f"The replay store is unavailable: {error}")


class _SignatureAuthentication(BaseAuthentication):
    scheme = ""

    def authenticate_header(self, request) -> str:
        return self.scheme  # keeps DRF answering 401 (not 403) when no credentials came

    @staticmethod
    def _headers(request) -> dict[str, str]:
        return {name.lower(): value for name, value in request.headers.items()}

    @classmethod
    def _key(cls, access_key_id: str, *, reload: bool = False) -> keystore.CachedKey:
        try:
            load = keystore.key_load if reload else keystore.key_get
            cached = load(access_key_id)
        except crypto.DecryptionError as error:
            raise GreenError(500, "InternalError", str(error)) from None
        except redis.RedisError as error:
            raise _store_unavailable(error) from None
        if cached is None:
            raise _unauthorized("InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        cls._check_active(cached.key)
        return cached

    @staticmethod
    def _check_active(key: AccessKey) -> None:
        if not key.active or not key.user.is_active:
            raise GreenError(
                403, "InvalidAccessKeyId.Inactive", "Specified access key is disabled."
            )

    @staticmethod
    def _check_date(date: datetime | None, now: datetime) -> datetime:
        if date is None:
            raise _unauthorized(
                "InvalidTimeStamp.Format", "The request date is missing or invalid."
            )
        if abs(now - date) > MAX_CLOCK_SKEW:
            raise _unauthorized(
                "InvalidTimeStamp.Expired",
                f"The request date {date:%Y-%m-%dT%H:%M:%SZ} is more than "
                f"{MAX_CLOCK_SKEW.seconds // 60} minutes away from the server time.",
            )
        return date

    @staticmethod
    def _check_signature(expected: str, given: str, signed_text: str) -> None:
        if not signatures.signatures_match(expected, given):
            # Like Alibaba's gateway: the server's string to sign helps a client find the
            # difference (it holds nothing the client did not send).
            raise _unauthorized(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. "
                f"server string to sign is:{signed_text}",
            )

    @classmethod
    def _claim(
        cls, cached: keystore.CachedKey, kind: str, value: str, date: datetime, now: datetime
    ) -> tuple[AccessKey, AccessKey]:
        """Claim the nonce; the request's user and key (copies, see keystore.for_request)."""
        expires_at = date + MAX_CLOCK_SKEW
        if keystore.redis_client() is None:
            claimed = services.request_claim(
                access_key_id=cached.key.access_key_id,
                kind=kind,
                value=value,
                expires_at=expires_at,
            )
        else:
            try:
                claimed, stale = keystore.claim(
                    cached=cached, kind=kind, value=value, expires_at=expires_at
                )
            except redis.RedisError as error:
                raise _store_unavailable(error) from None
            if stale:  # changed since it was cached (revoked, disabled, edited): reload
                cached = cls._key(cached.key.access_key_id, reload=True)
        if not claimed:
            raise _unauthorized(
                "SignatureNonceUsed", f"This request's {kind} was already used: sign it anew."
            )
        services.access_key_touch(access_key=cached.key, now=now)
        key = keystore.for_request(cached)
        return key.user, key


class RoaSignatureAuthentication(_SignatureAuthentication):
    """`Authorization: acs <AccessKeyId>:<base64 HMAC-SHA1>` (aliyun-python-sdk-core)."""

    scheme = "acs"

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.startswith("acs "):
            return None
        access_key_id, _, given = header[4:].partition(":")
        if not access_key_id or not given:
            raise _unauthorized("IncompleteSignature", "Use Authorization: acs <id>:<signature>.")
        cached = self._key(access_key_id.strip())
        secret = cached.secret
        headers = self._headers(request)
        now = timezone.now()
        date = self._check_date(_http_date(headers.get("date", "")), now)
        body = request._request.body
        if (body or "content-md5" in headers) and headers.get(
            "content-md5"
        ) != signatures.content_md5(body):
            raise _unauthorized("InvalidContentMD5", "Content-MD5 does not match the body.")
        signed_text = signatures.roa_string_to_sign(
            method=request.method,
            headers=headers,
            path=request.path,
            query=request.query_params.items(),
        )
        self._check_signature(signatures.roa_signature(secret, signed_text), given, signed_text)
        # This SDK sends no nonce: the signature (over the date and body) stands in for one.
        nonce = headers.get("x-acs-signature-nonce")
        return self._claim(cached, "nonce" if nonce else "signature", nonce or given, date, now)


class Acs3SignatureAuthentication(_SignatureAuthentication):
    """`Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`
    (alibabacloud-tea-openapi, behind alibabacloud-green20170823)."""

    scheme = signatures.ACS3_ALGORITHM

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.startswith(self.scheme + " "):
            return None
        auth = signatures.acs3_authorization_parse(header)
        if auth is None:
            raise _unauthorized("IncompleteSignature", "The Authorization header is malformed.")
        missing = ACS3_REQUIRED_HEADERS - set(auth.signed_headers)
        if missing:
            raise _unauthorized(
                "IncompleteSignature", f"Sign these headers too: {', '.join(sorted(missing))}."
            )
        cached = self._key(auth.access_key_id)
        secret = cached.secret
        headers = self._headers(request)
        now = timezone.now()
        date = self._check_date(_iso_date(headers.get("x-acs-date", "")), now)
        payload_sha256 = hashlib.sha256(request._request.body).hexdigest()
        if headers.get("x-acs-content-sha256", "").lower() != payload_sha256:
            raise _unauthorized(
                "InvalidContentSHA256", "x-acs-content-sha256 does not match the body."
            )
        canonical = signatures.acs3_canonical_request(
            method=request.method,
            path=request.path,
            query=request.query_params.items(),
            headers=headers,
            signed_headers=auth.signed_headers,
            payload_sha256=payload_sha256,
        )
        expected = signatures.acs3_signature(secret, canonical)
        self._check_signature(expected, auth.signature, canonical)
        nonce = headers.get("x-acs-signature-nonce", "")
        if not nonce:
            raise _unauthorized("MissingSignatureNonce", "x-acs-signature-nonce is required.")
        return self._claim(cached, "nonce", nonce, date, now)


def _http_date(value: str) -> datetime | None:
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return date if date.tzinfo else date.replace(tzinfo=UTC)


def _iso_date(value: str) -> datetime | None:
    try:
        date = datetime.fromisoformat(value)
    except ValueError:
        return None
    return date if date.tzinfo else date.replace(tzinfo=UTC)
