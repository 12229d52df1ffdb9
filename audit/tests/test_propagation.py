import base64
import io

import pytest
from PIL import Image, ImageDraw

from audit import services
from audit.models import Decision, DecisionTarget, PropagationState, Result
from audit.serializers import IngestSerializer
from audit.tests.factories import user_in
from policies.models import Policy
from samples.models import Sample, SampleEvent, SampleOrigin

pytestmark = pytest.mark.django_db

SPAM = "Cheap watches at shop.example, call +1 555 0104 now"
SPAM_COPY = "CHEAP wаtches at shop.example!! call +1 555 0199 now"  # Cyrillic а, other digits
OTHER = "See you at the match on Saturday, bring the blue scarf"


def ingest(run_on_commit, media_type, items, biz_type="default"):
    serializer = IngestSerializer(data={"type": media_type, "bizType": biz_type, "data": items})
    assert serializer.is_valid(), serializer.errors
    data = serializer.validated_data
    return run_on_commit(
        services.results_ingest,
        media_type=media_type,
        biz_type=data["biz_type"],
        items=data["data"],
    )


def texts(run_on_commit, *bodies, biz_type="default"):
    items = [
        {
            "taskId": f"t{i}",
            "content": body,
            "results": [{"scene": "antispam", "label": "ad", "suggestion": "review", "rate": 80}],
        }
        for i, body in enumerate(bodies)
    ]
    ingest(run_on_commit, "text", items, biz_type)


def decide(run_on_commit, reviewer, task_ids, suggestion="block", label="spam"):
    return run_on_commit(
        services.decision_record,
        reviewer=reviewer,
        task_ids=task_ids,
        suggestion=suggestion,
        label=label,
        channel="console",
    ).decision


def picture(size=(320, 240), shift=0) -> Image.Image:
    image = Image.new("RGB", size, (20, 90, 160))
    draw = ImageDraw.Draw(image)
    for i in range(8):
        draw.ellipse(
            (20 + i * 30 + shift, 30 + i * 18, 80 + i * 30, 90 + i * 18),
            fill=(40 * i % 255, 200 - 20 * i, 60 + 20 * i),
        )
    draw.rectangle((200, 20, 300, 120), fill=(250, 240, 20))
    return image


def encoded(image: Image.Image, fmt="PNG", **options) -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_block_reaches_the_near_copy_and_the_block_library(run_on_commit):
    rita = user_in("Reviewer", username="rita")
    texts(run_on_commit, SPAM, SPAM_COPY, OTHER)
    decision = decide(run_on_commit, rita, ["t0"])
    copy, other = Result.objects.get(task_id="t1"), Result.objects.get(task_id="t2")
    assert (copy.suggestion, copy.label, copy.verdict_source) == ("block", "spam", "propagated")
    assert copy.decision == decision and copy.decided_by == rita and copy.reviewed
    assert other.verdict_source == "machine"
    decision.refresh_from_db()
    assert decision.propagation == PropagationState.DONE
    assert (decision.changed_count, decision.changed_task_ids) == (1, ["t1"])
    assert DecisionTarget.objects.get(decision=decision).task_id == "t1"
    sample = Sample.objects.get()
    assert (sample.library.suggestion, sample.library.label, sample.text) == ("block", "spam", SPAM)
    assert decision.samples_added == [{"sample": sample.id, "action": "added", "task_id": "t0"}]


def test_passing_puts_the_item_in_the_pass_library(run_on_commit):
    texts(run_on_commit, OTHER)
    decide(run_on_commit, user_in("Reviewer"), ["t0"], suggestion="pass")
    sample = Sample.objects.get()
    assert (sample.library.suggestion, sample.library.label) == ("pass", "")


def test_a_near_copy_decided_later_is_linked_not_added(run_on_commit):
    rita = user_in("Reviewer")
    texts(run_on_commit, SPAM, OTHER)
    decide(run_on_commit, rita, ["t0"])
    ingest(
        run_on_commit,
        "text",
        [
            {
                "taskId": "later",
                "content": SPAM_COPY,
                "results": [
                    {"scene": "antispam", "label": "ad", "suggestion": "review", "rate": 70}
                ],
            }
        ],
    )
    decide(run_on_commit, rita, ["later"])
    assert Sample.objects.count() == 1
    assert set(SampleOrigin.objects.values_list("task_id", flat=True)) == {"t0", "later"}
    assert SampleEvent.objects.filter(action="linked").count() == 1


def test_a_human_decision_is_never_overwritten_and_a_later_one_wins(run_on_commit):
    rita, olga = user_in("Reviewer", username="rita"), user_in("Reviewer", username="olga")
    texts(run_on_commit, SPAM, SPAM_COPY, SPAM + "!", SPAM.upper())
    decide(run_on_commit, olga, ["t1"], suggestion="pass")  # olga decided t1 herself
    first = decide(run_on_commit, rita, ["t0"])  # reaches t2 and t3, not olga's t1
    states = dict(Result.objects.values_list("task_id", "suggestion"))
    assert states == {"t0": "block", "t1": "pass", "t2": "block", "t3": "block"}
    second = decide(run_on_commit, olga, ["t2"], suggestion="pass")  # later: wins over first
    assert Result.objects.get(task_id="t3").decision == second
    assert Result.objects.get(task_id="t3").suggestion == "pass"
    assert Result.objects.get(task_id="t0").decision == first  # a human's own: untouched


def test_propagating_twice_changes_nothing_the_second_time(run_on_commit):
    texts(run_on_commit, SPAM, SPAM_COPY)
    decision = decide(run_on_commit, user_in("Reviewer"), ["t0"])
    before = list(Result.objects.order_by("id").values_list("version", "decision_id"))
    Decision.objects.filter(id=decision.id).update(propagation=PropagationState.PENDING)
    services.decision_propagate(decision_id=decision.id)  # a redelivered task, say
    services.decision_propagate(decision_id=decision.id)
    assert list(Result.objects.order_by("id").values_list("version", "decision_id")) == before
    assert DecisionTarget.objects.count() == 1
    assert Sample.objects.count() == 1


def test_a_crash_midway_leaves_nothing_half_applied_and_the_retry_completes(
    run_on_commit, monkeypatch
):
    from samples import services as sample_services

    texts(run_on_commit, SPAM, SPAM_COPY)
    real = sample_services.sample_learn

    def crash(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(sample_services, "sample_learn", crash)
    decide(run_on_commit, user_in("Reviewer"), ["t0"])  # its propagation task fails
    decision = Decision.objects.get()
    assert decision.propagation == PropagationState.PENDING
    assert Result.objects.get(task_id="t1").verdict_source == "machine"  # rolled back
    assert DecisionTarget.objects.count() == 0
    monkeypatch.setattr(sample_services, "sample_learn", real)
    assert services.decisions_propagate_pending() == []  # not yet: it may still be running
    services.decision_propagate(decision_id=decision.id)
    assert Result.objects.get(task_id="t1").verdict_source == "propagated"


def test_the_policy_switch_turns_propagation_off_but_still_teaches(run_on_commit):
    Policy.objects.create(biz_type="quiet", propagate=False)
    texts(run_on_commit, SPAM, SPAM_COPY, biz_type="quiet")
    decide(run_on_commit, user_in("Reviewer"), ["t0"])
    assert Result.objects.get(task_id="t1").verdict_source == "machine"
    assert Sample.objects.count() == 1


def test_only_the_same_biz_type_is_touched(run_on_commit):
    texts(run_on_commit, SPAM)
    ingest(
        run_on_commit,
        "text",
        [
            {
                "taskId": "elsewhere",
                "content": SPAM,
                "results": [
                    {"scene": "antispam", "label": "ad", "suggestion": "review", "rate": 70}
                ],
            }
        ],
        biz_type="comments",
    )
    decide(run_on_commit, user_in("Reviewer"), ["t0"])
    assert Result.objects.get(task_id="elsewhere").verdict_source == "machine"


def test_an_image_decision_reaches_resized_and_recompressed_copies(run_on_commit):
    base = picture()
    items = [
        {"taskId": "a", "content": encoded(base)},
        {"taskId": "a-small", "content": encoded(base.resize((160, 120)), "JPEG", quality=60)},
        {"taskId": "a-flip", "content": encoded(base.transpose(Image.Transpose.FLIP_LEFT_RIGHT))},
        {"taskId": "b", "content": encoded(picture(shift=40).rotate(33))},
    ]
    for item in items:
        item["results"] = [{"scene": "porn", "label": "sexy", "suggestion": "review", "rate": 80}]
    ingest(run_on_commit, "image", items)
    decision = decide(run_on_commit, user_in("Reviewer"), ["a"], label="porn")
    states = dict(Result.objects.values_list("task_id", "verdict_source"))
    assert states == {"a": "human", "a-small": "propagated", "a-flip": "propagated", "b": "machine"}
    matched = dict(
        DecisionTarget.objects.filter(decision=decision).values_list("task_id", "matched_by")
    )
    assert matched["a-flip"] == "flip-h"
    sample = Sample.objects.get()
    assert sample.file and sample.fingerprints.filter(kind="pdq_variant").count() == 7


def test_a_video_decision_adds_nothing_to_a_library(run_on_commit):
    from audit.tests.factories import ResultFactory

    ResultFactory(task_id="v", media_type="video")
    decide(run_on_commit, user_in("Reviewer"), ["v"], label="porn")
    assert Sample.objects.count() == 0
    assert Decision.objects.get().propagation == PropagationState.DONE


def test_the_detail_page_shows_what_a_decision_will_reach_and_what_it_reached(
    run_on_commit, client
):
    rita = user_in("Reviewer", username="rita")
    client.force_login(rita)
    texts(run_on_commit, SPAM, SPAM_COPY, OTHER)
    before = client.get("/audit/items/t0/").content.decode()
    assert 'id="similar"' in before and "/audit/items/t1/" in before
    assert "/audit/items/t2/" not in before
    assert "a near-duplicate text: most of its character shingles are shared" in before
    decide(run_on_commit, rita, ["t0"])
    after = client.get("/audit/items/t0/").content.decode()
    assert 'id="touched"' in after and "text-near" in after
    assert after.count("a near-duplicate text: most of its character shingles") == 2
