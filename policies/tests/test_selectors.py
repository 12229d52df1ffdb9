import pytest

from policies import selectors, services
from policies.models import Policy, PolicyChange
from policies.tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db


def test_policy_for_returns_the_biz_types_own_policy():
    PolicyFactory(biz_type="comments", propagate=False)
    assert selectors.policy_for("comments").propagate is False


def test_policy_for_falls_back_to_the_default_policy():
    Policy.objects.filter(biz_type="default").update(propagate=False)
    policy = selectors.policy_for("unknown")
    assert policy.biz_type == "default"
    assert policy.propagate is False


def test_policy_for_without_a_default_policy_returns_unsaved_defaults():
    Policy.objects.all().delete()
    policy = selectors.policy_for("unknown")
    assert policy.pk is None and policy.biz_type == "default"
    assert policy.audit_range("image") == ["review", "block"]


def test_policy_for_sees_a_change_at_once(django_assert_num_queries):
    assert selectors.policy_for("x").image_audit_range == ["review", "block"]
    Policy.objects.filter(biz_type="default").update(image_audit_range=["block"])
    with django_assert_num_queries(1):
        assert selectors.policy_for("x").image_audit_range == ["block"]


def test_audit_ranges_splits_the_default_from_the_others_in_one_query(
    django_assert_num_queries,
):
    Policy.objects.filter(biz_type="default").update(video_audit_range=["block"])
    PolicyFactory(biz_type="comments", video_audit_range=["pass", "review", "block"])
    PolicyFactory(biz_type="avatars", video_audit_range=[])
    with django_assert_num_queries(1):
        default, others = selectors.audit_ranges("video")
    assert default == ["block"]
    assert others == {"comments": ["pass", "review", "block"], "avatars": []}


def test_audit_ranges_without_a_default_policy_uses_the_model_default():
    Policy.objects.filter(biz_type="default").delete()
    PolicyFactory(biz_type="comments", text_audit_range=["pass"])
    assert selectors.audit_ranges("text") == (["review", "block"], {"comments": ["pass"]})


def test_audit_ranges_refuses_an_unknown_content_type():
    with pytest.raises(ValueError):
        selectors.audit_ranges("audio")


def test_policy_list_puts_default_first():
    PolicyFactory(biz_type="a-first")
    PolicyFactory(biz_type="zeta")
    assert [p.biz_type for p in selectors.policy_list()] == ["default", "a-first", "zeta"]


def test_policy_change_diff_lists_only_changed_fields_with_display_names():
    policy, _ = services.policy_update(biz_type="comments", data={}, user=None)
    services.policy_update(
        biz_type="comments",
        data={"image_categories": ["porn", "ad"], "propagate": False},
        user=None,
    )
    diff = selectors.policy_change_diff(PolicyChange.objects.filter(policy=policy).first())
    assert [(d.label, d.before, d.after) for d in diff] == [
        ("Image categories", "Porn, Terrorism, Ad, Undesirable Scene", "Porn, Ad"),
        ("Propagate", "On", "Off"),
    ]


def test_policy_change_diff_of_a_creation_lists_every_field():
    services.policy_update(biz_type="comments", data={}, user=None)
    diff = selectors.policy_change_diff(PolicyChange.objects.get())
    assert len(diff) == len(services.POLICY_FIELDS)
    assert all(d.before == "—" for d in diff)
    assert diff[0].after == "Review, Block"


def test_policy_change_list_is_newest_first_and_capped():
    for propagate in [False, True] * 3:
        services.policy_update(biz_type="comments", data={"propagate": propagate}, user=None)
    changes = selectors.policy_change_list(policy=Policy.objects.get(biz_type="comments"), limit=4)
    assert len(changes) == 4
    assert changes[0].after["propagate"] is True and changes[0].before["propagate"] is False
