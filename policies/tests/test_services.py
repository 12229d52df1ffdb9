import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from policies import services
from policies.models import Policy, PolicyChange
from policies.tests.factories import PolicyFactory, admin_user

pytestmark = pytest.mark.django_db

FULL = {
    "image_audit_range": ["block"],
    "video_audit_range": ["review", "block"],
    "text_audit_range": ["pass", "review", "block"],
    "image_categories": ["porn", "terrorism"],
    "video_categories": ["porn"],
    "text_categories": ["spam", "abuse"],
    "propagate": False,
}


def errors_of(biz_type="comments", **data) -> dict:
    with pytest.raises(ValidationError) as caught:
        services.policy_update(biz_type=biz_type, data=data, user=None)
    return caught.value.message_dict


def test_creating_a_policy_records_a_change_without_before():
    user = admin_user()
    policy, created = services.policy_update(biz_type="comments", data=FULL, user=user)
    assert created
    assert policy.updated_by == user
    assert policy.text_categories == ["spam", "abuse"]
    change = PolicyChange.objects.get(policy=policy)
    assert change.before is None
    assert change.after == {
        "biz_type": "comments",
        **FULL,
        "callback_url": "",
        "callback_secret_set_at": None,
    }
    assert change.changed_by == user


def test_two_updates_record_two_changes_each_with_the_state_it_replaced():
    user = admin_user()
    services.policy_update(biz_type="comments", data=FULL, user=user)
    services.policy_update(biz_type="comments", data={"propagate": True}, user=user)
    policy, created = services.policy_update(
        biz_type="comments", data={"image_audit_range": []}, user=user
    )
    assert not created
    newest, middle, _ = PolicyChange.objects.filter(policy=policy)
    assert middle.before["propagate"] is False and middle.after["propagate"] is True
    assert newest.before == middle.after
    assert newest.after["image_audit_range"] == []
    assert newest.after["propagate"] is True


def test_an_update_that_changes_nothing_records_nothing():
    policy = PolicyFactory(biz_type="comments")
    before = policy.updated_at
    services.policy_update(
        biz_type="comments", data={"image_audit_range": ["block", "review"]}, user=None
    )
    assert not PolicyChange.objects.exists()
    policy.refresh_from_db()
    assert policy.updated_at == before


def test_audit_ranges_are_stored_in_a_fixed_order_and_categories_as_given():
    policy, _ = services.policy_update(
        biz_type="comments",
        data={"text_audit_range": ["block", "pass"], "text_categories": ["spam", "ad"]},
        user=None,
    )
    assert policy.text_audit_range == ["pass", "block"]
    assert policy.text_categories == ["spam", "ad"]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"image_audit_range": ["maybe"]}, "image_audit_range", "Unknown 'maybe'"),
        ({"video_audit_range": "review"}, "video_audit_range", "list of strings"),
        ({"text_audit_range": ["review", "review"]}, "text_audit_range", "more than once"),
        ({"image_categories": []}, "image_categories", "at least one"),
        ({"image_categories": ["gore"]}, "image_categories", "Unknown 'gore'"),
        ({"text_categories": ["spam", "spam"]}, "text_categories", "more than once"),
        ({"video_categories": [1]}, "video_categories", "list of strings"),
        ({"propagate": "yes"}, "propagate", "true or false"),
        ({"colour": "red"}, "colour", "Unknown field"),
    ],
)
def test_bad_values_are_refused_per_field_and_nothing_is_written(data, field, message):
    errors = errors_of(**data)
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not Policy.objects.filter(biz_type="comments").exists()
    assert not PolicyChange.objects.exists()


def test_more_than_nine_categories_is_refused(monkeypatch):
    # Only 7 categories exist today; the cap is about the keys 1-9 reviewers pick with.
    names = {f"c{i}": f"C{i}" for i in range(10)}
    monkeypatch.setattr(services, "CATEGORY_NAMES", names)
    errors = errors_of(text_categories=list(names))
    assert "At most 9" in errors["text_categories"][0]


def test_every_bad_field_is_reported_at_once():
    errors = errors_of(image_audit_range=["x"], text_categories=[], propagate=None)
    assert set(errors) == {"image_audit_range", "text_categories", "propagate"}


@pytest.mark.parametrize("biz_type", ["", "has space", "a/b", "x" * 65, "ok\n", "<b>", "new"])
def test_bad_biz_types_are_refused(biz_type):
    assert "biz_type" in errors_of(biz_type=biz_type, propagate=True)


def test_a_failed_update_leaves_the_policy_as_it_was():
    PolicyFactory(biz_type="comments", propagate=True)
    errors_of(propagate=False, image_categories=["gore"])
    assert Policy.objects.get(biz_type="comments").propagate is True
    assert not PolicyChange.objects.exists()


def test_the_default_policy_cannot_be_deleted():
    with pytest.raises(ValidationError) as caught:
        services.policy_delete(biz_type="default", user=None)
    assert "biz_type" in caught.value.message_dict
    assert Policy.objects.filter(biz_type="default").exists()


def test_deleting_a_policy_removes_it_with_its_history(caplog):
    services.policy_update(biz_type="comments", data=FULL, user=admin_user())
    with caplog.at_level("INFO", logger="policies.services"):
        services.policy_delete(biz_type="comments", user=admin_user())
    assert not Policy.objects.filter(biz_type="comments").exists()
    assert not PolicyChange.objects.exists()
    assert "'propagate': False" in caplog.text


def test_deleting_an_unknown_policy_raises_does_not_exist():
    with pytest.raises(Policy.DoesNotExist):
        services.policy_delete(biz_type="nope", user=None)


def test_policy_as_dict_holds_the_biz_type_and_every_editable_field():
    policy = PolicyFactory(biz_type="comments")
    assert set(services.policy_as_dict(policy)) == {
        "biz_type",
        *services.POLICY_FIELDS,
        "callback_secret_set_at",  # when the secret was set; never the secret
    }


# Concurrency (PostgreSQL: SQLite serializes whole-database writes anyway) -------------------


def _in_thread(target) -> threading.Thread:
    def run():
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _slow_update(data: dict, outcomes: list, hold: threading.Event, locked: threading.Event):
    """Updates inside a transaction that stays open (holding the row lock) until `hold`."""
    with transaction.atomic():
        outcomes.append(services.policy_update(biz_type="comments", data=data, user=None))
        locked.set()
        hold.wait(timeout=5)


# Skipped at collection, before a transactional setup (and its flush) runs for nothing.
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs row locks")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("exists", [True, False], ids=["update", "create"])
def test_concurrent_edits_are_serialized_so_each_before_is_right(exists):
    if exists:
        services.policy_update(biz_type="comments", data={}, user=None)
    outcomes: list = []
    hold, locked = threading.Event(), threading.Event()
    first = _in_thread(lambda: _slow_update({"propagate": False}, outcomes, hold, locked))
    assert locked.wait(timeout=5)
    second = _in_thread(
        lambda: outcomes.append(
            services.policy_update(biz_type="comments", data={"text_categories": ["ad"]}, user=None)
        )
    )
    second.join(timeout=0.5)
    assert second.is_alive(), "the second edit must wait for the first one's lock"
    hold.set()
    first.join(timeout=5)
    second.join(timeout=5)
    assert [created for _, created in outcomes] == [not exists, False]
    last, previous = PolicyChange.objects.filter(policy__biz_type="comments")[:2]
    assert last.before == previous.after
    assert last.after["propagate"] is False and last.after["text_categories"] == ["ad"]
