import json
from urllib.parse import urlsplit

import pytest
from aliyunsdkcore.client import AcsClient

# The same real servers as the audit tests (pytest finds fixtures imported into a conftest).
from audit.tests.conftest import callback_receiver, media_server, own_redis  # noqa: F401
from audit.tests.factories import UserFactory
from green import keystore, services


class ScanSdk:
    """The official scan SDK (aliyun-python-sdk-green) pointed at the live server, the way a
    client's own code does it: only the endpoint and protocol differ from Alibaba's."""

    def __init__(self, server_url: str, key_id: str, secret: str):
        self.endpoint = urlsplit(server_url).netloc
        self.client = AcsClient(key_id, secret, "cn-shanghai", auto_retry=False)

    def request(self, request_class, body):
        request = request_class()
        request.set_accept_format("JSON")
        request.set_content(json.dumps(body).encode())
        request.set_endpoint(self.endpoint)
        request.set_protocol_type("http")
        return request

    def call(self, request_class, body) -> dict:
        return json.loads(self.client.do_action_with_exception(self.request(request_class, body)))


def user_with(*perms: str):
    from django.contrib.auth.models import Permission

    user = UserFactory()
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(codename=codename, content_type__app_label=app_label)
        )
    return user


@pytest.fixture
def client_user(transactional_db):
    return user_with("audit.add_result", "audit.view_result", "audit.add_decision")


@pytest.fixture
def access_key(client_user):
    return services.access_key_issue(user=client_user, name="tests")


@pytest.fixture
def sdk(live_server, access_key) -> ScanSdk:
    key, secret = access_key
    return ScanSdk(live_server.url, key.access_key_id, secret)


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    keystore.cache_clear()
    yield
    keystore.cache_clear()


@pytest.fixture
def redis_store(settings, own_redis):  # noqa: F811 - the fixture imported above
    """The replay store and key generations in a redis-server of the test's own."""
    own_redis.start()
    settings.GREEN_REDIS_URL = own_redis.url
    return own_redis
