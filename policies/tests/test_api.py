import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from audit.tests.factories import UserFactory
from policies import services
from policies.models import Policy, PolicyChange
from policies.tests.factories import admin_user, reviewer

pytestmark = pytest.mark.django_db

BODY = {
    "auditRange": {"image": ["block"], "video": ["review", "block"], "text": ["review"]},
    "categories": {"image": ["porn", "ad"], "video": ["porn"], "text": ["spam", "abuse"]},
    "propagate": False,
}


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def user_with(*codenames: str):
    user = UserFactory()
    for codename in codenames:
        user.user_permissions.add(
            Permission.objects.get(codename=codename, content_type__app_label="policies")
        )
    return user


def put(client, biz_type, body):
    return client.put(f"/api/v1/policies/{biz_type}", body, format="json")


def test_list_returns_every_policy_default_first():
    services.policy_update(biz_type="comments", data={"propagate": False}, user=None)
    response = api_as(reviewer()).get("/api/v1/policies")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [p["bizType"] for p in results] == ["default", "comments"]
    assert results[1]["propagate"] is False
    assert results[0]["auditRange"] == {
        "image": ["review", "block"],
        "video": ["review", "block"],
        "text": ["review", "block"],
    }
    assert results[0]["categories"]["text"] == [
        "porn", "terrorism", "ad", "abuse", "spam", "contraband"
    ]  # fmt: skip
    assert "history" not in results[0]


def test_detail_returns_the_policy_with_its_history():
    user = admin_user()
    services.policy_update(biz_type="comments", data={}, user=user)
    services.policy_update(biz_type="comments", data={"propagate": False}, user=user)
    body = api_as(reviewer()).get("/api/v1/policies/comments").json()
    assert body["bizType"] == "comments"
    assert body["updatedBy"] == user.username
    assert body["updatedAt"]
    newest, first = body["history"]
    assert newest["changedBy"] == user.username
    assert newest["before"]["propagate"] is True and newest["after"]["propagate"] is False
    assert newest["after"]["auditRange"]["image"] == ["review", "block"]
    assert first["before"] is None


def test_detail_of_a_biz_type_without_its_own_policy_is_404():
    response = api_as(reviewer()).get("/api/v1/policies/comments")
    assert response.status_code == 404
    assert response.json() == {
        "code": 404,
        "msg": "No policy of its own for bizType 'comments': the default policy applies.",
    }


def test_put_creates_a_policy_with_201_and_records_it():
    user = admin_user()
    response = put(api_as(user), "comments", BODY)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["auditRange"] == BODY["auditRange"]
    assert body["categories"] == BODY["categories"]
    assert body["propagate"] is False
    assert body["updatedBy"] == user.username
    assert len(body["history"]) == 1
    policy = Policy.objects.get(biz_type="comments")
    assert policy.text_categories == ["spam", "abuse"]


def test_put_replaces_a_policy_with_200():
    client = api_as(admin_user())
    put(client, "comments", BODY)
    response = put(client, "comments", {**BODY, "propagate": True})
    assert response.status_code == 200
    assert response.json()["propagate"] is True
    assert PolicyChange.objects.filter(policy__biz_type="comments").count() == 2


def test_put_of_the_same_policy_twice_records_one_change():
    client = api_as(admin_user())
    put(client, "comments", BODY)
    assert put(client, "comments", BODY).status_code == 200
    assert PolicyChange.objects.count() == 1


def test_delete_removes_a_policy():
    client = api_as(admin_user())
    put(client, "comments", BODY)
    assert client.delete("/api/v1/policies/comments").status_code == 204
    assert not Policy.objects.filter(biz_type="comments").exists()
    assert client.delete("/api/v1/policies/comments").status_code == 404


def test_the_default_policy_cannot_be_deleted():
    response = api_as(admin_user()).delete("/api/v1/policies/default")
    assert response.status_code == 400
    assert "default" in response.json()["errors"]["bizType"][0]
    assert Policy.objects.filter(biz_type="default").exists()


# Permissions -------------------------------------------------------------------------------


def test_anonymous_requests_are_refused():
    client = APIClient()
    assert client.get("/api/v1/policies").status_code == 401
    assert put(client, "comments", BODY).status_code == 401


def test_a_user_without_view_policy_cannot_read():
    client = api_as(UserFactory())
    assert client.get("/api/v1/policies").status_code == 403
    assert client.get("/api/v1/policies/default").status_code == 403


def test_a_reviewer_reads_but_cannot_change_or_delete():
    client = api_as(reviewer())
    assert client.get("/api/v1/policies/default").status_code == 200
    assert put(client, "default", BODY).status_code == 403
    assert put(client, "comments", BODY).status_code == 403
    assert client.delete("/api/v1/policies/default").status_code == 403
    assert not PolicyChange.objects.exists()


def test_change_policy_alone_updates_but_cannot_create():
    client = api_as(user_with("change_policy"))
    assert put(client, "default", BODY).status_code == 200
    response = put(client, "comments", BODY)
    assert response.status_code == 403
    assert "add_policy" in response.json()["msg"]
    assert not Policy.objects.filter(biz_type="comments").exists()


def test_add_policy_alone_cannot_create():
    assert put(api_as(user_with("add_policy")), "comments", BODY).status_code == 403


def test_add_and_change_policy_create():
    assert (
        put(api_as(user_with("add_policy", "change_policy")), "comments", BODY).status_code == 201
    )


def test_delete_needs_delete_policy():
    services.policy_update(biz_type="comments", data={}, user=None)
    assert api_as(user_with("change_policy")).delete("/api/v1/policies/comments").status_code == 403
    assert api_as(user_with("delete_policy")).delete("/api/v1/policies/comments").status_code == 204


def test_a_token_works_too():
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=reviewer()).key}")
    assert client.get("/api/v1/policies").status_code == 200


# Bad input ---------------------------------------------------------------------------------


def with_(path: str, value) -> dict:
    """BODY with the value at a dotted path replaced (or removed, for value=...)."""
    body = {**BODY, "auditRange": {**BODY["auditRange"]}, "categories": {**BODY["categories"]}}
    *parents, leaf = path.split(".")
    target = body
    for parent in parents:
        target = target[parent]
    if value is ...:
        del target[leaf]
    else:
        target[leaf] = value
    return body


TEN = ["porn", "terrorism", "ad", "undesirable", "abuse", "spam", "contraband", "a", "b", "c"]


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (with_("auditRange.image", ["maybe"]), "auditRange.image", "Unknown 'maybe'"),
        (with_("auditRange.text", ["block", "block"]), "auditRange.text", "more than once"),
        (with_("categories.video", ["gore"]), "categories.video", "Unknown 'gore'"),
        (with_("categories.text", []), "categories.text", "at least one"),
        (with_("categories.text", ["spam", "spam"]), "categories.text", "more than once"),
        (with_("categories.image", TEN), "categories.image", "Unknown 'a', 'b', 'c'"),
        (with_("auditRange.image", "review"), "auditRange.image", "Expected a list"),
        (with_("auditRange.video", [1]), "auditRange.video.0", "Not a valid string"),
        (with_("categories", ["porn"]), "categories.non_field_errors", "Expected a dictionary"),
        (with_("propagate", "true"), "propagate", "Must be a valid boolean"),
        (with_("propagate", 1), "propagate", "Must be a valid boolean"),
        (with_("propagate", None), "propagate", "may not be null"),
        (with_("propagate", ...), "propagate", "required"),
        (with_("auditRange", ...), "auditRange", "required"),
        (with_("auditRange.video", ...), "auditRange.video", "required"),
        (with_("categories.text", ...), "categories.text", "required"),
    ],
)
def test_bad_bodies_get_400_with_field_errors_and_write_nothing(body, path, message):
    response = put(api_as(admin_user()), "comments", body)
    assert response.status_code == 400, response.json()
    payload = response.json()
    assert payload["code"] == 400
    errors = payload["errors"]
    for key in path.split("."):
        errors = errors[key]
    assert message in errors[0]
    assert not Policy.objects.filter(biz_type="comments").exists()
    assert not PolicyChange.objects.exists()


def test_more_than_nine_categories_is_refused(monkeypatch):
    names = {f"c{i}": f"C{i}" for i in range(10)}
    monkeypatch.setattr(services, "CATEGORY_NAMES", names)
    response = put(api_as(admin_user()), "comments", with_("categories.text", list(names)))
    assert response.status_code == 400
    assert "At most 9" in response.json()["errors"]["categories"]["text"][0]


def test_a_body_that_is_not_an_object_is_400():
    client = api_as(admin_user())
    assert put(client, "comments", ["x"]).status_code == 400
    response = client.put("/api/v1/policies/comments", "{not json", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("biz_type", ["bad%20name", "new", "x" * 65, "ok%0A", "%3Cb%3E"])
def test_a_bad_biz_type_is_400(biz_type):
    response = put(api_as(admin_user()), biz_type, BODY)
    assert response.status_code == 400
    assert "bizType" in response.json()["errors"]
    assert not PolicyChange.objects.exists()


def test_a_failed_replace_leaves_the_policy_as_it_was():
    client = api_as(admin_user())
    put(client, "comments", BODY)
    response = put(client, "comments", with_("categories.text", ["gore"]) | {"propagate": True})
    assert response.status_code == 400
    assert Policy.objects.get(biz_type="comments").propagate is False
    assert PolicyChange.objects.count() == 1


def test_the_schema_documents_the_policies_api(admin_client):
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/policies/{biz_type}" in text
    assert '"auditRange"' in text
