import pytest
from django.core.exceptions import ValidationError

from audit import services
from audit.models import Decision, DecisionItem, Result
from audit.tests.factories import ResultFactory, user_in
from policies.models import Policy

pytestmark = pytest.mark.django_db


def decide(reviewer, task_ids, suggestion="block", label="porn", **kwargs):
    return services.decision_record(
        reviewer=reviewer,
        task_ids=task_ids,
        suggestion=suggestion,
        label=label,
        channel="console",
        **kwargs,
    )


def test_a_decision_updates_the_results_and_records_who_what_and_before():
    alice = user_in("Reviewer", username="alice")
    a = ResultFactory(media_type="image", task_id="a", suggestion="review", label="sexy")
    b = ResultFactory(media_type="image", task_id="b")
    outcome = decide(alice, ["a", "b"], note="nudity")
    assert outcome.conflicts == []
    decision = Decision.objects.get()
    assert (decision.reviewer, decision.suggestion, decision.label, decision.note) == (
        alice,
        "block",
        "porn",
        "nudity",
    )
    assert decision.item_count == 2
    for result in Result.objects.all():
        assert (result.suggestion, result.label, result.verdict_source) == (
            "block",
            "porn",
            "human",
        )
        assert result.reviewed and result.decided_by == alice and result.decision == decision
        assert result.version == 1
    item = DecisionItem.objects.get(task_id="a")
    assert (item.previous_suggestion, item.previous_label, item.previous_source) == (
        "review",
        "sexy",
        "machine",
    )
    assert {r.task_id for r in outcome.decided} == {a.task_id, b.task_id}


def test_pass_sets_the_normal_label():
    ResultFactory(task_id="t")
    decide(user_in("Reviewer"), ["t"], suggestion="pass", label="porn")
    assert Result.objects.get().label == "normal"


def test_the_second_reviewer_sees_a_conflict_instead_of_overwriting():
    alice, bob = user_in("Reviewer", username="alice"), user_in("Reviewer", username="bob")
    ResultFactory(media_type="image", task_id="same")
    seen = {"same": 0}  # both loaded the page at version 0
    decide(alice, ["same"], versions=seen)
    outcome = decide(bob, ["same"], suggestion="pass", versions=seen)
    assert outcome.decision is None and outcome.decided == []
    [conflict] = outcome.conflicts
    assert (conflict.decided_by, conflict.suggestion, conflict.label) == ("alice", "block", "porn")
    result = Result.objects.get()
    assert (result.suggestion, result.decided_by.username) == ("block", "alice")
    assert Decision.objects.count() == 1


def test_a_batch_decides_the_rest_and_reports_the_conflicts():
    alice, bob = user_in("Reviewer", username="alice"), user_in("Reviewer", username="bob")
    for t in ("x", "y", "z"):
        ResultFactory(media_type="image", task_id=t)
    decide(alice, ["y"], versions={"y": 0})
    outcome = decide(bob, ["x", "y", "z"], suggestion="pass", versions={"x": 0, "y": 0, "z": 0})
    assert [c.task_id for c in outcome.conflicts] == ["y"]
    assert outcome.decision.item_count == 2
    assert DecisionItem.objects.filter(decision=outcome.decision).count() == 2
    assert Result.objects.get(task_id="y").decided_by == alice


def test_without_versions_a_human_decision_is_not_overwritten_but_a_machine_one_is():
    ResultFactory(task_id="m")
    ResultFactory(task_id="h", verdict_source="human", reviewed=True)
    outcome = decide(user_in("Reviewer"), ["m", "h"])
    assert [r.task_id for r in outcome.decided] == ["m"]
    assert [c.task_id for c in outcome.conflicts] == ["h"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"task_ids": []}, "taskIds"),
        ({"task_ids": ["nope"]}, "taskIds"),
        ({"suggestion": "review"}, "suggestion"),
        ({"label": ""}, "label"),
        ({"label": "spam"}, "label"),  # a text category, not one for images
        ({"note": "x" * 1001}, "note"),
        ({"task_ids": [f"t{i}" for i in range(501)]}, "taskIds"),
    ],
)
def test_bad_decisions_are_refused_and_change_nothing(kwargs, field):
    ResultFactory(media_type="image", task_id="t")
    args = {"task_ids": ["t"], "suggestion": "block", "label": "porn", **kwargs}
    with pytest.raises(ValidationError) as error:
        decide(user_in("Reviewer"), **args)
    assert field in error.value.message_dict
    assert Decision.objects.count() == 0
    assert Result.objects.get().verdict_source == "machine"


def test_block_categories_come_from_the_policy_of_the_biz_type():
    Policy.objects.create(biz_type="chat", text_categories=["spam", "scam"])
    ResultFactory(task_id="c", biz_type="chat")
    ResultFactory(task_id="d")
    decide(user_in("Reviewer"), ["c"], label="scam")
    assert Result.objects.get(task_id="c").label == "scam"
    with pytest.raises(ValidationError):
        decide(user_in("Reviewer"), ["d"], label="scam")  # not in the default text list
