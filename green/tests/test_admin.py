import re

import pytest

from audit.tests.factories import UserFactory, user_in
from green.models import AccessKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(user_in("Admin", is_staff=True))
    return client


def test_issuing_a_key_shows_the_secret_once_and_stores_it_encrypted(admin_client):
    owner = UserFactory()
    response = admin_client.post(
        "/admin/green/accesskey/add/",
        {"name": "shop backend", "user": owner.id, "biz_types": "shop, forum", "enabled": "on"},
    )
    assert response.status_code == 200
    key = AccessKey.objects.get()
    secret = re.search(r"AccessKey Secret</th><td><code>(\w+)</code>", response.content.decode())[1]
    assert key.secret == secret and secret not in key.secret_encrypted
    assert (key.user, key.biz_types, key.created_by is not None) == (owner, ["shop", "forum"], True)
    page = admin_client.get(f"/admin/green/accesskey/{key.id}/change/").content.decode()
    assert secret not in page


def test_revoking_from_the_admin(admin_client):
    from green import services

    key, _ = services.access_key_issue(user=UserFactory())
    admin_client.post(
        "/admin/green/accesskey/",
        {"action": "revoke", "_selected_action": [key.id]},
    )
    key.refresh_from_db()
    assert key.revoked_at is not None and not key.active
