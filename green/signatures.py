"""Alibaba Cloud's two request signatures, as the official SDKs compute them. Pure functions:
auth.py feeds them what arrived and compares in constant time.

ROA, HMAC-SHA1 (aliyun-python-sdk-core, aliyunsdkcore/auth/composer/roa_signature_composer.py),
used by the scan API (aliyun-python-sdk-green):

    METHOD \\n Accept \\n Content-MD5 \\n Content-Type \\n Date \\n
    x-acs-a:value \\n x-acs-b:value \\n ...        (every x-acs-* header, lower-cased, sorted)
    /path?k1=v1&k2=v2                               (query sorted by name, values not encoded)

    Authorization: acs <AccessKeyId>:base64(hmac_sha1(secret, string_to_sign))

ACS3-HMAC-SHA256 (alibabacloud_tea_openapi/utils.py `get_authorization`), used by the console
API (alibabacloud-green20170823):

    canonical request = METHOD \\n /path \\n k1=v1&k2=v2 (sorted, RFC 3986-encoded) \\n
                        name:value \\n ... (the signed headers, lower-cased, sorted) \\n
                        signed;header;names \\n hex(sha256(body))
    string to sign    = ACS3-HMAC-SHA256 \\n hex(sha256(canonical request))

    Authorization: ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=a;b,Signature=<hex hmac>
"""

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

ACS3_ALGORITHM = "ACS3-HMAC-SHA256"
_ACS3_FIELD = re.compile(r"\s*(Credential|SignedHeaders|Signature)=([^,\s]*)\s*")


def roa_string_to_sign(
    *, method: str, headers: Mapping[str, str], path: str, query: Iterable[tuple[str, str]]
) -> str:
    """`headers` by lower-case name; `query` decoded (name, value) pairs."""
    lines = [method.upper()]
    lines += [headers.get(name, "") for name in ("accept", "content-md5", "content-type", "date")]
    acs = sorted((k, v) for k, v in headers.items() if k.startswith("x-acs-"))
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in acs)
    pairs = sorted(query, key=lambda pair: pair[0])
    resource = path + ("?" + "&".join(f"{k}={v}" for k, v in pairs) if pairs else "")
    return "\n".join(lines) + "\n" + canonical_headers + resource


def roa_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324 - the protocol's


@dataclass(frozen=True)
class Acs3Authorization:
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def acs3_authorization_parse(value: str) -> Acs3Authorization | None:
    """The fields of an ACS3-HMAC-SHA256 Authorization header; None if it is malformed."""
    algorithm, _, rest = value.partition(" ")
    if algorithm != ACS3_ALGORITHM:
        return None
    fields = {}
    for part in rest.split(","):
        match = _ACS3_FIELD.fullmatch(part)
        if match is None or match[1] in fields:
            return None
        fields[match[1]] = match[2]
    if fields.keys() != {"Credential", "SignedHeaders", "Signature"}:
        return None
    signed = tuple(fields["SignedHeaders"].split(";"))
    if not all(signed) or list(signed) != sorted(set(signed)):
        return None
    return Acs3Authorization(fields["Credential"], signed, fields["Signature"].lower())


def acs3_canonical_request(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload_sha256: str,
) -> str:
    """`headers` by lower-case name (only the signed ones are used); `query` decoded pairs."""
    pairs = sorted((_rfc3986(k), _rfc3986(v)) for k, v in query)
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    canonical_headers = "".join(
        f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers
    )
    return "\n".join(
        [
            method.upper(),
            quote(path, safe="/~") or "/",
            canonical_query,
            canonical_headers,
            ";".join(signed_headers),
            payload_sha256,
        ]
    )


def acs3_signature(secret: str, canonical_request: str) -> str:
    hashed = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"{ACS3_ALGORITHM}\n{hashed}"
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def signatures_match(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def _rfc3986(value: str) -> str:
    return quote(value, safe="~")
