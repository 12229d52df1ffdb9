"""A policy's callback settings: the URL, and the signing secret (generated, encrypted,
rotated, shown only to those who may change the policy)."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.db import connection
from rest_framework.test import APIClient

from moderation_console import crypto
from policies import selectors, services
from policies.models import Policy, PolicyChange
from policies.tests.factories import admin_user, reviewer
from policies.tests.test_admin import FORM
from policies.tests.test_api import BODY

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.com/moderation"
BAD_URLS = [
    ("ftp://hooks.example.com/x", "only http and https"),
    ("javascript:alert(1)", "only http and https"),
    ("hooks.example.com/x", "only http and https"),
    ("https://user:pass@hooks.example.com/x", "user:password@"),
    ("https://hooks.example.com/a b", "whitespace"),
    ("https:///x", "no valid host"),
    ("http://127.0.0.1:8000/hook", "not a public address"),
    ("http://[::1]/hook", "not a public address"),
    ("http://10.0.0.8/hook", "not a public address"),
    ("https://hooks.example.com/" + "x" * 2048, "2048"),
]


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def with_callback(url: str = HOOK, biz_type: str = "comments") -> Policy:
    policy, _ = services.policy_update(biz_type=biz_type, data={"callback_url": url}, user=None)
    return policy


# The URL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_the_service_refuses_a_bad_callback_url_with_a_field_error(url, message):
    with pytest.raises(ValidationError) as caught:
        services.policy_update(biz_type="comments", data={"callback_url": url}, user=None)
    assert message in caught.value.message_dict["callback_url"][0]
    assert not Policy.objects.filter(biz_type="comments").exists()


def test_an_internal_address_is_accepted_once_allow_listed(settings):
    import ipaddress

    settings.FETCH_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    assert with_callback("http://10.0.0.8:8080/hook").callback_url == "http://10.0.0.8:8080/hook"


@pytest.mark.parametrize(("url", "message"), BAD_URLS[:8])
def test_the_api_answers_a_bad_callback_url_with_400(url, message):
    response = api_as(admin_user()).put(
        "/api/v1/policies/comments", {**BODY, "callbackUrl": url}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert message in response.json()["errors"]["callbackUrl"][0]
    assert not Policy.objects.filter(biz_type="comments").exists()


@pytest.mark.parametrize("value", [5, None, ["https://x.example"]])
def test_the_api_refuses_a_callback_url_that_is_not_a_string(value):
    response = api_as(admin_user()).put(
        "/api/v1/policies/comments", {**BODY, "callbackUrl": value}, format="json"
    )
    assert response.status_code == 400
    assert "callbackUrl" in response.json()["errors"]


def test_the_api_sets_and_clears_the_callback_url_and_keeps_it_when_left_out():
    client = api_as(admin_user())
    created = client.put("/api/v1/policies/comments", {**BODY, "callbackUrl": HOOK}, format="json")
    assert created.status_code == 201
    assert created.json()["callbackUrl"] == HOOK
    assert created.json()["callbackSecretSetAt"]
    kept = client.put("/api/v1/policies/comments", BODY, format="json").json()
    assert kept["callbackUrl"] == HOOK
    cleared = client.put("/api/v1/policies/comments", {**BODY, "callbackUrl": ""}, format="json")
    assert cleared.json()["callbackUrl"] == ""


@pytest.mark.parametrize(("url", "message"), BAD_URLS[:8])
def test_the_console_form_shows_a_bad_callback_url_as_a_field_error(client, url, message):
    client.force_login(admin_user())
    form = {**FORM, "callback_url": url}
    response = client.post("/policies/default/", form)
    assert response.status_code == 200
    assert response.context["form"].errors["callback_url"][0].startswith("Not a usable")
    assert message in response.context["form"].errors["callback_url"][0]
    assert Policy.objects.get(biz_type="default").callback_url == ""


def test_the_admin_form_saves_a_callback_url_and_refuses_a_bad_one(client):
    client.force_login(admin_user())
    policy = Policy.objects.get(biz_type="default")
    url = f"/admin/policies/policy/{policy.pk}/change/"
    bad = client.post(url, {**FORM, "callback_url": "ftp://x.example/"})
    assert bad.status_code == 200
    assert "only http and https" in bad.content.decode()
    assert client.post(url, {**FORM, "callback_url": HOOK}).status_code == 302
    policy.refresh_from_db()
    assert policy.callback_url == HOOK and policy.callback_secret


# The secret ---------------------------------------------------------------------------------


def test_a_secret_is_generated_when_the_policy_first_gets_a_callback_url():
    policy, _ = services.policy_update(biz_type="comments", data={}, user=None)
    assert policy.callback_secret == "" and policy.callback_secret_set_at is None
    policy = with_callback()
    secret = policy.callback_secret
    assert len(secret) >= 43  # 32 random bytes, url-safe base64
    policy = with_callback("https://other.example.com/hook")
    assert policy.callback_secret == secret  # a new URL keeps the secret


def test_the_secret_is_encrypted_in_the_database():
    policy = with_callback()
    secret = policy.callback_secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM policies_policy WHERE id = %s", [policy.id])
        row = cursor.fetchone()
        cursor.execute('SELECT "before", "after" FROM policies_policychange')
        history = cursor.fetchall()
    assert not any(secret in str(value) for value in row)
    assert not any(secret in str(value) for change in history for value in change)
    assert crypto.decrypt(policy.callback_secret_encrypted) == secret


def test_rotating_records_when_but_never_the_secret():
    old = with_callback().callback_secret
    policy = services.policy_secret_rotate(biz_type="comments", user=admin_user())
    assert policy.callback_secret not in ("", old)
    change = PolicyChange.objects.filter(policy=policy).first()
    assert change.before["callback_secret_set_at"] != change.after["callback_secret_set_at"]
    assert old not in str(change.after) and policy.callback_secret not in str(change.after)
    [diff] = selectors.policy_change_diff(change)
    assert diff.label == "Callback secret" and diff.after.startswith("generated ")


def test_the_policies_api_never_shows_the_secret_and_the_secret_endpoint_needs_change_policy():
    secret = with_callback().callback_secret
    for path in ("/api/v1/policies", "/api/v1/policies/comments"):
        response = api_as(admin_user()).get(path)
        assert response.status_code == 200 and secret not in response.content.decode()
    path = "/api/v1/policies/comments/callback-secret"
    assert api_as(reviewer()).get(path).status_code == 403
    assert api_as(reviewer()).post(path).status_code == 403
    shown = api_as(admin_user()).get(path)
    assert shown.status_code == 200 and shown.json()["callbackSecret"] == secret
    rotated = api_as(admin_user()).post(path)
    assert rotated.status_code == 200
    assert rotated.json()["callbackSecret"] not in ("", secret)
    assert api_as(admin_user()).get("/api/v1/policies/nope/callback-secret").status_code == 404


def test_the_admin_shows_the_secret_and_rotates_it_with_a_button(client):
    policy = with_callback(biz_type="default")
    client.force_login(admin_user())
    page = client.get(f"/admin/policies/policy/{policy.pk}/change/").content.decode()
    assert policy.callback_secret in page
    assert 'formaction="/admin/policies/policy/' in page
    rotate = f"/admin/policies/policy/{policy.pk}/rotate-secret/"
    assert client.get(rotate).status_code == 405
    response = client.post(rotate, {**FORM, "callback_url": HOOK})
    assert response.status_code == 302
    assert Policy.objects.get(pk=policy.pk).callback_secret != policy.callback_secret


def test_the_admin_action_rotates_the_selected_policies(client):
    policy = with_callback()
    client.force_login(admin_user())
    response = client.post(
        "/admin/policies/policy/",
        {"action": "rotate_callback_secret", "_selected_action": [policy.pk]},
    )
    assert response.status_code == 302
    assert Policy.objects.get(pk=policy.pk).callback_secret != policy.callback_secret


def test_the_console_page_shows_the_url_but_never_the_secret(client):
    policy = with_callback(biz_type="default")
    for user in (reviewer(), admin_user()):
        client.force_login(user)
        page = client.get("/policies/default/").content.decode()
        assert HOOK in page and policy.callback_secret not in page


# The encryption module ----------------------------------------------------------------------


def test_crypto_round_trips_and_decrypts_with_an_older_key_after_rotation(settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old_key
    token = crypto.encrypt("s3cret")
    assert token != "s3cret" and crypto.decrypt(token) == "s3cret"
    settings.FIELD_ENCRYPTION_KEY = f"{new_key},{old_key}"
    assert crypto.decrypt(token) == "s3cret"
    settings.FIELD_ENCRYPTION_KEY = new_key
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_crypto_refuses_a_malformed_key(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.FIELD_ENCRYPTION_KEY = "not-a-key"
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEY"):
        crypto.encrypt("x")
