"""Reviewer flows in a real headless Chromium, against the live console."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from audit.models import Decision, Result
from audit.tests.factories import ResultFactory, image_bytes
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


def text_result(task_id, minutes_ago, text="some text", **fields):
    return ResultFactory(
        task_id=task_id,
        media_type="text",
        text=text,
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        **fields,
    )


def card(page, task_id):
    return page.locator(f'.item[data-task-id="{task_id}"]')


def test_pass_and_block_update_the_item_in_place(reviewer_page):
    page = reviewer_page
    text_result("t1", 30, text="hello")
    text_result("t2", 20, text="buy pills")
    page.goto("/audit/?type=text")
    page.evaluate("window.notReloaded = true")
    card(page, "t1").get_by_role("button", name="Pass").click()
    expect(card(page, "t1")).to_contain_text("by rita")
    card(page, "t2").get_by_role("button", name="Block").click()
    page.get_by_role("radio", name="Spam").check()
    page.fill("#block-dialog textarea", "pill spam")
    page.click("#block-dialog button[type=submit]")
    expect(card(page, "t2")).to_contain_text("Block · spam")
    assert page.evaluate("window.notReloaded") is True
    assert Result.objects.get(task_id="t2").label == "spam"
    assert Decision.objects.get(label="spam").note == "pill spam"


def test_filters_live_in_the_url(reviewer_page):
    page = reviewer_page
    text_result("keep", 10, data_id="wanted")
    text_result("other", 5, data_id="unwanted")
    page.goto("/audit/?type=text")
    page.click("summary")
    page.fill("input[name=data_id]", "wanted")
    page.click("#filter-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"data_id=wanted"))
    expect(page.locator(".item")).to_have_count(1)
    expect(card(page, "keep")).to_be_visible()
    page.goto("/audit/?type=text&date_from=not-a-date")
    expect(page.locator(".field-error")).to_contain_text("Enter a valid date")


def test_batch_block_with_shift_click(reviewer_page):
    page = reviewer_page
    for i in range(4):
        text_result(f"b{i}", 40 - i)
    page.goto("/audit/?type=text")
    card(page, "b0").locator(".select").click()
    card(page, "b2").locator(".select").click(modifiers=["Shift"])
    expect(page.locator("#selected-count")).to_have_text("3 selected")
    page.click("#batch-block")
    page.get_by_role("radio", name="Abuse").check()
    page.click("#block-dialog button[type=submit]")
    for i in range(3):
        expect(card(page, f"b{i}")).to_contain_text("Block · abuse")
    expect(card(page, "b3")).to_contain_text("machine")
    decision = Decision.objects.get()
    assert decision.item_count == 3


def test_clicking_an_item_opens_its_detail(reviewer_page, settings):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    page = reviewer_page
    name = default_storage.save("results/t/pic.png", ContentFile(image_bytes((64, 48), "PNG")))
    ResultFactory(
        task_id="img1",
        media_type="image",
        file=name,
        fetch_status="done",
        scene_results=[{"scene": "porn", "label": "sexy", "suggestion": "review", "rate": 88.0}],
        label="sexy",
    )
    page.goto("/audit/")
    expect(card(page, "img1").locator(".media img")).to_have_js_property("complete", True)
    card(page, "img1").locator("a.media").click()
    expect(page).to_have_url(re.compile(r"/audit/items/img1/"))
    expect(page.locator("table.plain").first).to_contain_text("sexy")
    expect(page.locator(".full img")).to_have_js_property("naturalWidth", 64)


def test_a_queue_of_mixed_items_cleared_with_the_keyboard_alone(reviewer_page):
    page = reviewer_page
    for i, text in enumerate(["fine", "spam spam", "threat", "ad here", "also fine"]):
        text_result(f"k{i}", 50 - i, text=text)
    page.goto("/audit/?type=text")
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("p")  # k0 pass, focus moves on
    expect(card(page, "k0")).to_contain_text("by rita")
    page.keyboard.press("b")
    page.keyboard.press("5")  # k1: Spam, the 5th text category
    expect(card(page, "k1")).to_contain_text("Block · spam")
    page.keyboard.press("x")  # select k2 and k3, then block both as abuse
    page.keyboard.press("j")
    page.keyboard.press("x")
    page.keyboard.press("b")
    page.keyboard.press("4")
    expect(card(page, "k2")).to_contain_text("Block · abuse")
    expect(card(page, "k3")).to_contain_text("Block · abuse")
    page.keyboard.press("j")
    page.keyboard.press("p")
    expect(card(page, "k4")).to_contain_text("by rita")
    assert not Result.objects.filter(reviewed=False).exists()
    page.keyboard.press("k")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/audit/items/k3/"))


def test_a_second_reviewer_is_told_who_decided_first(reviewer_page):
    from audit import services
    from audit.tests.factories import user_in

    page = reviewer_page
    text_result("c1", 10)
    page.goto("/audit/?type=text")
    olga = user_in("Reviewer", username="olga")
    services.decision_record(
        reviewer=olga, task_ids=["c1"], suggestion="block", label="ad", channel="console"
    )
    card(page, "c1").get_by_role("button", name="Pass").click()
    expect(card(page, "c1")).to_contain_text("Already decided by olga")
    expect(page.locator("#status")).to_contain_text("already decided by someone else")
    assert Result.objects.get().suggestion == "block"


def test_an_admin_policy_change_makes_pass_results_appear(page, transactional_db):
    from audit.tests.factories import user_in

    user_in("Admin", username="ada", is_staff=True)
    text_result("machine-pass", 10, machine_suggestion="pass", suggestion="pass")
    text_result("machine-review", 5)
    log_in(page, "ada")
    page.goto("/audit/?type=text")
    expect(page.locator(".item")).to_have_count(1)
    page.goto("/policies/default/")
    page.locator("input[name=text_audit_range][value=pass]").check()
    page.locator("form button[type=submit]").last.click()
    expect(page.locator("body")).to_contain_text("Policy default saved")
    page.goto("/audit/?type=text")
    expect(page.locator(".item")).to_have_count(2)
    expect(card(page, "machine-pass")).to_be_visible()


def test_an_image_queue_cleared_with_the_keyboard_alone(reviewer_page):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    page = reviewer_page
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    for i, colour in enumerate(colours):
        name = default_storage.save(
            f"results/k/{i}.png", ContentFile(image_bytes((80, 60), "PNG", colour))
        )
        ResultFactory(
            task_id=f"i{i}",
            media_type="image",
            file=name,
            fetch_status="done",
            machine_suggestion=["review", "block", "review"][i],
            created_at=timezone.now() - timedelta(minutes=30 - i),
        )
    page.goto("/audit/")
    expect(page.locator(".item.focused .media img")).to_have_js_property("naturalWidth", 80)
    page.keyboard.press("g")  # grayscale on
    expect(page.locator("#items")).to_have_class(re.compile("grayscale"))
    page.keyboard.press("b")
    page.keyboard.press("1")  # Porn
    page.keyboard.press("p")
    page.keyboard.press("b")
    page.keyboard.press("4")  # Undesirable Scene
    expect(card(page, "i2")).to_contain_text("Block · undesirable")
    verdicts = dict(Result.objects.values_list("task_id", "label"))
    assert verdicts == {"i0": "porn", "i1": "normal", "i2": "undesirable"}


def test_each_tab_says_how_many_unreviewed_items_expire_today(reviewer_page):
    from django.core.cache import cache

    cache.clear()
    page = reviewer_page
    end_of_today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    end_of_today += timedelta(days=1)
    text_result("soon", 30, expires_at=end_of_today - timedelta(seconds=1))
    text_result("later", 20, expires_at=end_of_today + timedelta(hours=2))
    page.goto("/audit/?type=text")
    expect(page.locator('[data-count="text"]')).to_have_text("2")
    expect(page.locator('[data-count="text:expiring"]')).to_have_text("1 expire today")
    expect(page.locator('[data-count="image:expiring"]')).to_be_hidden()
