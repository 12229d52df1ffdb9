import pytest

from policies import services
from policies.models import Policy, PolicyChange
from policies.tests.factories import PolicyFactory, admin_user, reviewer

pytestmark = pytest.mark.django_db

FORM = {
    "image_audit_range": ["review", "block"],
    "video_audit_range": ["block"],
    "text_audit_range": ["pass", "review", "block"],
    "image_categories": ["porn"],
    "video_categories": ["porn", "terrorism"],
    "text_categories": ["spam", "abuse"],
    "propagate": "on",
}


@pytest.fixture
def as_admin(client):
    client.force_login(admin_user())
    return client


def test_the_change_form_saves_through_the_service_once(as_admin):
    policy = Policy.objects.get(biz_type="default")
    response = as_admin.post(f"/admin/policies/policy/{policy.pk}/change/", FORM)
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.video_audit_range == ["block"]
    assert policy.updated_by.groups.filter(name="Admin").exists()
    change = PolicyChange.objects.get(policy=policy)
    assert change.before["video_audit_range"] == ["review", "block"]
    # Kept in the order the policy had them, not the order posted.
    assert change.after["text_categories"] == ["abuse", "spam"]


def test_the_add_form_creates_a_policy_with_its_first_history_row(as_admin):
    response = as_admin.post("/admin/policies/policy/add/", {**FORM, "biz_type": "comments"})
    assert response.status_code == 302
    change = PolicyChange.objects.get(policy__biz_type="comments")
    assert change.before is None


def test_the_change_form_shows_checkboxes_with_category_names(as_admin):
    policy = Policy.objects.get(biz_type="default")
    page = as_admin.get(f"/admin/policies/policy/{policy.pk}/change/").content.decode()
    assert 'type="checkbox" name="image_categories" value="undesirable"' in page
    assert "Undesirable Scene" in page


def test_bad_admin_input_shows_errors_and_saves_nothing(as_admin):
    response = as_admin.post(
        "/admin/policies/policy/add/", {**FORM, "biz_type": "bad name", "text_categories": []}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Pick at least one category." in page
    assert "letters, digits" in page
    assert not PolicyChange.objects.exists()


def test_the_default_policy_cannot_be_deleted_in_the_admin(as_admin):
    policy = Policy.objects.get(biz_type="default")
    response = as_admin.post(f"/admin/policies/policy/{policy.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Policy.objects.filter(biz_type="default").exists()


def test_a_policy_with_history_can_be_deleted_in_the_admin(as_admin):
    policy, _ = services.policy_update(biz_type="comments", data={}, user=None)
    response = as_admin.post(f"/admin/policies/policy/{policy.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Policy.objects.filter(biz_type="comments").exists()


def test_the_changelist_shows_the_audit_ranges(as_admin):
    PolicyFactory(biz_type="comments", text_audit_range=["pass"])
    page = as_admin.get("/admin/policies/policy/").content.decode()
    assert "Text audit range" in page
    assert '<td class="field-text_range">pass</td>' in page


def test_the_history_admin_is_read_only_with_a_readable_diff(as_admin):
    policy, _ = services.policy_update(biz_type="comments", data={}, user=None)
    services.policy_update(biz_type="comments", data={"propagate": False}, user=None)
    page = as_admin.get("/admin/policies/policychange/").content.decode()
    assert "<li>Propagate: On → Off</li>" in page
    change = PolicyChange.objects.first()
    assert as_admin.get("/admin/policies/policychange/add/").status_code == 403
    detail = as_admin.get(f"/admin/policies/policychange/{change.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    delete = as_admin.post(f"/admin/policies/policychange/{change.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert PolicyChange.objects.count() == 2


def test_a_reviewer_cannot_open_the_admin(client):
    client.force_login(reviewer())
    response = client.get("/admin/policies/policy/")
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")
