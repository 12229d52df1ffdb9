"""The replay store in Redis and the short cache of AccessKeys (green.keystore), through the
official scan SDK against the live server."""

import uuid

import redis
from aliyunsdkgreen.request.v20180509 import TextScanRequest
from django.utils import timezone

from audit.models import Result
from green import keystore
from green.models import AccessKey, SeenRequest
from green.tests.test_scan_sdk import refused

BODY = {"scenes": ["antispam"], "tasks": [{"content": "hello"}]}


def scan_with_nonce(sdk, nonce: str) -> dict:
    request = sdk.request(TextScanRequest.TextScanRequest, BODY)
    request.add_header("x-acs-signature-nonce", nonce)
    return sdk.client.do_action_with_exception(request)


def revoke_elsewhere(key: AccessKey) -> None:
    """What another process's revocation does: the row, then (with Redis) the generation."""
    AccessKey.objects.filter(id=key.id).update(revoked_at=timezone.now(), enabled=False)


def test_with_redis_a_nonce_is_refused_the_second_time(sdk, redis_store):
    nonce = uuid.uuid4().hex
    scan_with_nonce(sdk, nonce)
    error = refused(lambda: scan_with_nonce(sdk, nonce))
    assert (error.get_http_status(), error.get_error_code()) == (401, "SignatureNonceUsed")
    assert Result.objects.count() == 1
    assert not SeenRequest.objects.exists()  # claimed in Redis, not in the table


def test_with_redis_a_revocation_elsewhere_is_refused_at_once(sdk, access_key, redis_store):
    key = access_key[0]
    sdk.call(TextScanRequest.TextScanRequest, BODY)  # the key is now cached in this process
    revoke_elsewhere(key)
    redis.Redis.from_url(redis_store.url).incr(keystore.generation_key(key.access_key_id))

    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, BODY))
    assert (error.get_http_status(), error.get_error_code()) == (403, "InvalidAccessKeyId.Inactive")
    assert Result.objects.count() == 1


def test_without_redis_a_revocation_elsewhere_waits_for_the_cache(sdk, access_key, settings):
    settings.ACCESS_KEY_CACHE_SECONDS = 3600
    sdk.call(TextScanRequest.TextScanRequest, BODY)
    revoke_elsewhere(access_key[0])
    sdk.call(TextScanRequest.TextScanRequest, BODY | {"tasks": [{"content": "hi"}]})  # cached

    settings.ACCESS_KEY_CACHE_SECONDS = 0  # the bound has passed
    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, BODY))
    assert error.get_error_code() == "InvalidAccessKeyId.Inactive"


def test_a_redis_that_is_down_refuses_with_the_envelope(sdk, redis_store):
    redis_store.stop()
    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, BODY))
    assert (error.get_http_status(), error.get_error_code()) == (503, "ServiceUnavailable")
    assert not Result.objects.exists()


def test_permissions_are_not_cached_with_the_key(sdk, access_key):
    sdk.call(TextScanRequest.TextScanRequest, BODY)
    access_key[0].user.user_permissions.clear()
    again = BODY | {"tasks": [{"content": "hi"}]}  # not a replay of the first
    error = refused(lambda: sdk.call(TextScanRequest.TextScanRequest, again))
    assert error.get_http_status() == 403
