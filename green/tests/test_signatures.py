"""The signature functions agree with the SDKs' own signers on the same inputs."""

from datetime import timedelta

import pytest
from alibabacloud_tea_openapi.utils import Utils
from aliyunsdkcore.auth.composer import roa_signature_composer
from darabonba.request import DaraRequest
from django.utils import timezone

from green import services, signatures
from green.models import SeenRequest


def test_roa_string_to_sign_matches_the_sdk():
    headers = {
        "Accept": "application/json",
        "Content-MD5": signatures.content_md5(b"{}"),
        "Content-Type": "application/octet-stream",
        "x-acs-version": "2018-05-09",
        "x-acs-region-id": "cn-shanghai",
    }
    queries = {"RegionId": "cn-shanghai", "ClientInfo": '{"ip": "1.2.3.4"}'}
    expected = roa_signature_composer.compose_string_to_sign(
        "POST",
        dict(queries),
        "/green/text/scan",
        {**headers, "Date": "Thu, 26 Nov 2026 00:00:00 GMT"},
    )
    ours = signatures.roa_string_to_sign(
        method="POST",
        headers={k.lower(): v for k, v in headers.items()}
        | {"date": "Thu, 26 Nov 2026 00:00:00 GMT"},
        path="/green/text/scan",
        query=queries.items(),
    )
    assert ours == expected


def test_acs3_signature_matches_the_sdk():
    request = DaraRequest()
    request.method, request.pathname = "POST", "/"
    request.query = {"PageSize": "20", "Label": "spam & eggs~"}
    request.headers = {
        "host": "127.0.0.1:8000",
        "x-acs-action": "DescribeAuditContent",
        "x-acs-date": "2026-11-26T00:00:00Z",
        "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
    authorization = Utils.get_authorization(
        request, "ACS3-HMAC-SHA256", request.headers["x-acs-content-sha256"], "LTAIid", "s3cret"
    )
    parsed = signatures.acs3_authorization_parse(authorization)
    canonical = signatures.acs3_canonical_request(
        method="POST",
        path="/",
        query=request.query.items(),
        headers=request.headers,
        signed_headers=parsed.signed_headers,
        payload_sha256=request.headers["x-acs-content-sha256"],
    )
    assert parsed.access_key_id == "LTAIid"
    assert signatures.acs3_signature("s3cret", canonical) == parsed.signature


@pytest.mark.parametrize(
    "header",
    [
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=",
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=x;host,Signature=ab",  # not sorted
        "ACS3-HMAC-SHA256 Credential=a,Credential=b,SignedHeaders=host,Signature=ab",
        "ACS3-HMAC-SHA1 Credential=a,SignedHeaders=host,Signature=ab",
        "ACS3-HMAC-SHA256 Credential=a",
    ],
)
def test_malformed_acs3_headers_are_refused(header):
    parsed = signatures.acs3_authorization_parse(header)
    assert parsed is None or not parsed.signature


@pytest.mark.django_db
def test_a_claim_succeeds_once_and_again_after_it_expired():
    later = timezone.now() + timedelta(minutes=15)
    claim = {"access_key_id": "LTAIid", "kind": "nonce", "value": "n1"}
    assert services.request_claim(**claim, expires_at=later)
    assert not services.request_claim(**claim, expires_at=later)
    SeenRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.request_claim(**claim, expires_at=later)


@pytest.mark.django_db
def test_the_purge_deletes_only_expired_claims():
    now = timezone.now()
    services.request_claim(access_key_id="k", kind="nonce", value="old", expires_at=now)
    services.request_claim(
        access_key_id="k", kind="nonce", value="new", expires_at=now + timedelta(minutes=5)
    )
    assert services.seen_requests_purge(now=now + timedelta(seconds=1)) == 1
    assert SeenRequest.objects.count() == 1
