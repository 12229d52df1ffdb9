import pytest

from audit.tests.factories import UserFactory
from policies import services
from policies.models import Policy, PolicyChange
from policies.tests.factories import PolicyFactory, admin_user, reviewer

pytestmark = pytest.mark.django_db

FORM = {
    "image_audit_range": ["block"],
    "video_audit_range": ["review", "block"],
    "text_audit_range": ["review", "block"],
    "image_categories": ["porn", "ad"],
    "video_categories": ["porn"],
    "text_categories": ["spam"],
    "propagate": "on",
}


@pytest.fixture
def as_reviewer(client):
    client.force_login(reviewer())
    return client


@pytest.fixture
def as_admin(client):
    client.force_login(admin_user())
    return client


@pytest.mark.parametrize("url", ["/policies/", "/policies/default/", "/policies/new/"])
def test_anonymous_visitors_are_sent_to_log_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_a_user_without_view_policy_gets_403(client):
    client.force_login(UserFactory())
    assert client.get("/policies/").status_code == 403


def test_the_list_shows_every_policy_to_a_reviewer(as_reviewer):
    PolicyFactory(biz_type="comments", text_audit_range=["pass", "review", "block"])
    page = as_reviewer.get("/policies/").content.decode()
    assert 'href="/policies/comments/"' in page
    assert "pass, review, block" in page
    assert "New policy" not in page


def test_a_reviewer_sees_the_policy_read_only(as_reviewer):
    page = as_reviewer.get("/policies/default/").content.decode()
    assert "Porn, Terrorism, Ad, Undesirable Scene" in page
    assert '<form method="post" class="card policy-form"' not in page
    assert 'type="checkbox"' not in page


def test_a_reviewer_cannot_post_an_edit(as_reviewer):
    response = as_reviewer.post("/policies/default/", FORM)
    assert response.status_code == 403
    assert not PolicyChange.objects.exists()


def test_a_reviewer_cannot_open_the_create_page(as_reviewer):
    assert as_reviewer.get("/policies/new/").status_code == 403
    assert as_reviewer.post("/policies/new/", {**FORM, "biz_type": "x"}).status_code == 403
    assert not Policy.objects.filter(biz_type="x").exists()


def test_an_admin_edits_a_policy_and_sees_it_in_the_history(as_admin):
    response = as_admin.post("/policies/default/", FORM, follow=True)
    assert response.redirect_chain == [("/policies/default/", 302)]
    policy = Policy.objects.get(biz_type="default")
    assert policy.image_audit_range == ["block"]
    assert policy.image_categories == ["porn", "ad"]
    assert PolicyChange.objects.filter(policy=policy).count() == 1
    page = response.content.decode()
    assert "Policy default saved." in page
    assert "<del>Porn, Terrorism, Ad, Undesirable Scene</del> → <ins>Porn, Ad</ins>" in page


def test_unchecking_propagate_turns_it_off(as_admin):
    data = {k: v for k, v in FORM.items() if k != "propagate"}
    as_admin.post("/policies/default/", data)
    assert Policy.objects.get(biz_type="default").propagate is False


def test_an_edit_keeps_the_category_order_reviewers_know(as_admin):
    services.policy_update(
        biz_type="default", data={"text_categories": ["spam", "ad", "porn"]}, user=None
    )
    # Browsers post checkboxes in page order.
    as_admin.post("/policies/default/", {**FORM, "text_categories": ["porn", "ad", "spam"]})
    assert Policy.objects.get(biz_type="default").text_categories == ["spam", "ad", "porn"]


def test_bad_form_input_shows_the_errors_and_saves_nothing(as_admin):
    response = as_admin.post(
        "/policies/default/", {**FORM, "image_categories": [], "text_audit_range": ["maybe"]}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Pick at least one category." in page
    assert "Select a valid choice. maybe is not one of the available choices." in page
    assert not PolicyChange.objects.exists()


def test_a_checkbox_value_posted_twice_is_saved_once(as_admin):
    response = as_admin.post("/policies/default/", {**FORM, "text_categories": ["spam", "spam"]})
    assert response.status_code == 302
    assert Policy.objects.get(biz_type="default").text_categories == ["spam"]


def test_an_unknown_biz_type_is_404(as_reviewer):
    assert as_reviewer.get("/policies/nothing-here/").status_code == 404


def test_an_admin_creates_a_policy_starting_from_the_default(as_admin):
    Policy.objects.filter(biz_type="default").update(video_audit_range=["block"])
    form_page = as_admin.get("/policies/new/").content.decode()
    assert 'name="video_audit_range" value="block"' in form_page
    response = as_admin.post("/policies/new/", {**FORM, "biz_type": "comments"})
    assert response.status_code == 302 and response.url == "/policies/comments/"
    policy = Policy.objects.get(biz_type="comments")
    assert policy.text_categories == ["spam"]
    assert PolicyChange.objects.get(policy=policy).before is None


@pytest.mark.parametrize(
    ("biz_type", "message"),
    [("default", "has a policy already"), ("bad name", "letters, digits"), ("new", "reserved")],
)
def test_creating_with_a_bad_or_taken_biz_type_shows_an_error(as_admin, biz_type, message):
    response = as_admin.post("/policies/new/", {**FORM, "biz_type": biz_type})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PolicyChange.objects.exists()


def test_the_history_escapes_what_users_typed(as_admin):
    user = UserFactory(username="<script>alert(1)</script>")
    services.policy_update(biz_type="default", data={"propagate": False}, user=user)
    page = as_admin.get("/policies/default/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_detail_page_queries_do_not_grow_with_history(as_admin, django_assert_max_num_queries):
    for propagate in [False, True] * 10:
        services.policy_update(biz_type="default", data={"propagate": propagate}, user=None)
    with django_assert_max_num_queries(12):
        assert as_admin.get("/policies/default/").status_code == 200
