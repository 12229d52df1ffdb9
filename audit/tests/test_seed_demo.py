"""`manage.py seed_demo` and the demo content generators of audit/demo.py."""

import dataclasses
import io
import random
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import PurePosixPath

import av
import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from PIL import Image
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from audit import demo
from audit.management.commands import seed_demo
from audit.models import SUGGESTION_SEVERITY, Result, ResultScene

SEED = 7


# --- Generators -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images():
    return demo.make_images(SEED, originals=6)


@pytest.fixture(scope="module")
def videos():
    return demo.make_videos(SEED, originals=2)


@pytest.fixture(scope="module")
def texts():
    return demo.make_texts(SEED, originals=40)


def decode(image: demo.DemoImage) -> Image.Image:
    img = Image.open(io.BytesIO(image.data))
    img.load()
    return img


def test_images_decode_with_their_recorded_format_and_size(images):
    for image in images:
        img = decode(image)
        assert (img.format, img.size) == (image.format, (image.width, image.height))
    originals = [i for i in images if i.variant == "original"]
    assert len(originals) == 6
    assert all(min(i.width, i.height) >= 256 and max(i.width, i.height) <= 640 for i in originals)


def test_images_are_deterministic_per_seed_and_number():
    again = demo.make_image_group(SEED, 3, variants=2)
    assert [i.data for i in again] == [i.data for i in demo.make_image_group(SEED, 3, 2)]
    assert again[0].data != demo.make_image_group(SEED + 1, 3, 0)[0].data


def test_image_pool_has_near_duplicate_groups_that_look_alike(images):
    groups = defaultdict(list)
    for image in images:
        groups[image.group].append(image)
    copied = {g: items for g, items in groups.items() if len(items) > 1}
    assert copied, "some originals must have near-duplicates"
    for items in copied.values():
        original = items[0]
        assert original.variant == "original"
        for copy in items[1:]:
            assert copy.data != original.data
            assert copy.variant in {*demo.IMAGE_EDITS, "recompressed"}
            assert thumbnail_correlation(decode(original), decode(copy)) > 0.8


def thumbnail_correlation(a: Image.Image, b: Image.Image) -> float:
    """Pearson correlation of 16x16 grey thumbnails: blind to brightness and contrast, as
    perceptual hashes are, and near 1 for the same picture."""
    xs, ys = (img.convert("L").resize((16, 16), Image.Resampling.BOX).tobytes() for img in (a, b))
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx, vy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return cov / (vx * vy) ** 0.5


def test_image_pool_respects_its_file_budget():
    assert len(demo.make_images(SEED, originals=10, max_total=12)) == 12


def test_videos_open_with_pyav_and_have_their_frames(videos):
    assert any(v.variant != "original" for v in videos)
    for video in videos:
        with av.open(io.BytesIO(video.data)) as container:
            stream = container.streams.video[0]
            frames = list(container.decode(stream))
        assert (stream.codec_context.width, stream.codec_context.height) == (
            video.width,
            video.height,
        )
        assert len(frames) == round(video.duration * video.fps)
        assert 1 <= video.duration <= 3


def test_video_reencodes_share_the_original_group(videos):
    by_group = defaultdict(set)
    for video in videos:
        by_group[video.group].add(video.variant)
    assert any(len(variants) > 1 and "original" in variants for variants in by_group.values())


def test_text_variants_differ_but_keep_their_group_and_category(texts):
    originals = {t.group: t for t in texts if t.variant == "original"}
    variants = [t for t in texts if t.variant != "original"]
    assert variants
    for variant in variants:
        original = originals[variant.group]
        assert variant.text != original.text
        assert variant.category == original.category
    categories = {t.category for t in texts}
    assert {"normal", "ad", "abuse", "contraband"} <= categories


def test_text_variants_use_look_alikes_and_zero_width_spaces(texts):
    edited = "".join(t.text for t in texts if t.variant != "original")
    assert demo.ZERO_WIDTH_SPACE in edited
    assert set(demo.HOMOGLYPHS.values()) & set(edited)


@pytest.mark.parametrize("suggestion", ["pass", "review", "block"])
def test_machine_results_are_consistent(suggestion, images, videos, texts):
    rng = random.Random(1)
    results = [demo.image_results(rng, i, suggestion) for i in images]
    results += [demo.video_results(rng, v, suggestion)[0] for v in videos]
    results += [demo.text_results(rng, t, suggestion) for t in texts if t.category != "normal"]
    for scene_results in results:
        for r in scene_results:
            assert 0 <= r["rate"] <= 100
            assert r["suggestion"] == demo.suggestion_for(r["label"], r["rate"])
            assert r["label"] == "normal" or r["label"] in demo.SCENE_LABELS.get(
                r["scene"], (r["label"],)
            )
        assert demo.worst_verdict(scene_results)[0] == suggestion


def test_text_details_point_at_the_flagged_words(texts):
    rng = random.Random(2)
    flagged = [t for t in texts if t.category != "normal"]
    for text in flagged:
        (result,) = demo.text_results(rng, text, "block")
        assert result["scene"] == "antispam" and result["label"] == text.category
        assert_positions_match(text.text, result)


def assert_positions_match(text: str, result: dict) -> None:
    assert result["details"]
    for detail in result["details"]:
        for context in detail["contexts"]:
            assert context["context"]
            for position in context["positions"]:
                assert text[position["startPos"] : position["endPos"]] == context["context"]


def test_passed_texts_carry_no_details(texts):
    (result,) = demo.text_results(random.Random(3), texts[0], "pass")
    assert (result["label"], result["suggestion"]) == ("normal", "pass")
    assert "details" not in result


def test_flagged_video_scenes_list_frames_within_the_clip(videos):
    rng = random.Random(4)
    for video in videos:
        scene_results, frames = demo.video_results(rng, video, "block")
        offsets = [f["offset"] for f in frames]
        assert offsets and all(0 <= o < max(video.duration, 1) for o in offsets)
        flagged = [r for r in scene_results if r["suggestion"] == "block"]
        assert len(flagged) == 1
        assert flagged[0]["frames"]
        assert max(f["rate"] for f in flagged[0]["frames"]) == flagged[0]["rate"]
        assert {f["offset"] for f in flagged[0]["frames"]} <= set(offsets)
        for frame in frames:
            assert [r["scene"] for r in frame["results"]] == list(demo.VIDEO_SCENES)


def test_worst_verdict_prefers_severity_then_rate():
    results = [
        {"scene": "porn", "label": "sexy", "suggestion": "review", "rate": 70.0},
        {"scene": "ad", "label": "qrcode", "suggestion": "review", "rate": 80.0},
        {"scene": "terrorism", "label": "normal", "suggestion": "pass", "rate": 99.9},
    ]
    assert demo.worst_verdict(results) == ("review", "qrcode")
    results[0]["suggestion"], results[0]["rate"] = "block", 95.0
    assert demo.worst_verdict(results) == ("block", "sexy")


def test_stratified_mix_is_exact_and_shows_every_value():
    values = seed_demo.stratified(random.Random(0), 100, seed_demo.SUGGESTION_MIX)
    assert Counter(values) == {"pass": 60, "review": 25, "block": 15}
    assert set(seed_demo.stratified(random.Random(0), 5, seed_demo.MEDIA_MIX)) == {
        "image",
        "video",
        "text",
    }


# --- The command ------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", seed=SEED, stdout=out, **options)
    return out.getvalue()


@pytest.mark.django_db
def test_creates_the_demo_accounts_and_a_usable_token(media, monkeypatch):
    monkeypatch.setenv("DEMO_REVIEWER_PASSWORD", "from-the-env")
    out = seed(count=0)
    users = get_user_model().objects

    admin = users.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.is_active
    assert admin.check_password("admin-demo-pass")

    reviewer = users.get(username="reviewer")
    assert reviewer.is_active and not reviewer.is_staff and not reviewer.is_superuser
    assert reviewer.check_password("from-the-env")
    assert reviewer.has_perms(["audit.view_result", "audit.add_decision"])
    assert not reviewer.is_staff and not reviewer.has_perm("policies.change_policy")
    assert not reviewer.has_perm("audit.add_result")

    client = users.get(username="api-client")
    assert not client.has_usable_password()
    assert client.has_perms(["audit.add_result", "audit.view_result"])
    token = Token.objects.get(user=client)
    assert TokenAuthentication().authenticate_credentials(token.key)[0] == client

    assert "admin / admin-demo-pass" in out
    assert "reviewer / from-the-env" in out
    assert token.key in out
    assert not Result.objects.exists()


@pytest.mark.django_db
def test_seeds_the_requested_results_with_the_planned_mix(media):
    out = seed(count=100, no_accounts=True)
    results = list(Result.objects.all())
    assert len(results) == 100
    assert Counter(r.media_type for r in results) == {"image": 60, "video": 10, "text": 30}
    assert Counter(r.machine_suggestion for r in results) == {
        "pass": 60,
        "review": 25,
        "block": 15,
    }
    assert {r.biz_type for r in results} >= {"default", "comments"}
    assert len({r.task_id for r in results}) == 100
    assert all(
        r.task_id[:3] == {"image": "img", "video": "vid", "text": "txt"}[r.media_type]
        for r in results
    )
    assert "Added 100 results" in out and "rows/s" in out
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_results_are_spread_over_the_last_week_and_expire_after_retention(media, settings):
    before = timezone.now()
    seed(count=60, no_accounts=True)
    retention = timedelta(days=settings.RESULT_RETENTION_DAYS)
    for r in Result.objects.all():
        assert before - timedelta(days=7) <= r.created_at <= before
        assert r.expires_at == r.created_at + retention
    span = Result.objects.order_by("created_at")
    assert span.last().created_at - span.first().created_at > timedelta(days=3)


@pytest.mark.django_db
def test_results_stay_within_a_shorter_retention(media, settings):
    settings.RESULT_RETENTION_DAYS = 2
    before = timezone.now()
    seed(count=20, no_accounts=True)
    for r in Result.objects.all():
        assert r.created_at >= before - timedelta(days=2)
        assert r.expires_at == r.created_at + timedelta(days=2)


def worst_over(scene_results: list[dict]) -> str:
    return max((r["suggestion"] for r in scene_results), key=SUGGESTION_SEVERITY.__getitem__)


@pytest.mark.django_db
def test_verdicts_are_the_worst_scene_and_scenes_are_indexed(media):
    seed(count=80, no_accounts=True)
    scenes = defaultdict(set)
    for s in ResultScene.objects.all():
        scenes[s.result_id].add((s.scene, s.label, s.suggestion, s.rate))
    for r in Result.objects.all():
        assert r.machine_suggestion == worst_over(r.scene_results)
        assert (r.machine_suggestion, r.machine_label) == demo.worst_verdict(r.scene_results)
        assert (r.suggestion, r.label) == (r.machine_suggestion, r.machine_label)
        assert (r.verdict_source, r.reviewed, r.decided_by_id) == ("machine", False, None)
        expected = {(x["scene"], x["label"], x["suggestion"], x["rate"]) for x in r.scene_results}
        assert scenes[r.id] == expected


@pytest.mark.django_db
def test_media_rows_point_at_stored_files(media):
    seed(count=60, no_accounts=True)
    for r in Result.objects.exclude(media_type="text"):
        assert r.file.name.startswith(f"demo/{SEED}/")
        assert default_storage.exists(r.file.name)
        assert (media / r.file.name).is_file()
        assert r.fetch_status == "done" and r.width and r.height
    for r in Result.objects.filter(media_type="image"):
        with Image.open(r.file.path) as img:
            assert img.format == r.content_format and img.size == (r.width, r.height)
    for r in Result.objects.filter(media_type="video"):
        assert r.content_format == "mp4" and r.duration > 0
        assert r.frames and all("offset" in f and f["results"] for f in r.frames)
        with av.open(r.file.path) as container:
            assert container.streams.video[0].codec_context.width == r.width
    for r in Result.objects.filter(media_type="text"):
        assert r.text and not r.file and r.fetch_status == "none"


@pytest.mark.django_db
def test_rows_share_near_duplicate_image_files(media):
    seed(count=60, no_accounts=True)
    groups = defaultdict(set)
    for name in Result.objects.filter(media_type="image").values_list("file", flat=True):
        stem = PurePosixPath(name).stem  # "003" for the original, "003-b" for a copy
        groups[stem.split("-")[0]].add(stem)
    assert any(len(stems) >= 2 for stems in groups.values())


@pytest.mark.django_db
def test_text_details_point_at_the_stored_text(media):
    seed(count=100, no_accounts=True)
    flagged = Result.objects.filter(media_type="text").exclude(machine_suggestion="pass")
    assert flagged.exists()
    for r in flagged:
        (result,) = r.scene_results
        assert_positions_match(r.text, result)


@pytest.mark.django_db
def test_a_rerun_adds_results_and_keeps_the_accounts(media):
    seed(count=15)
    token = Token.objects.get().key
    out = seed(count=15)
    assert Result.objects.count() == 30
    assert get_user_model().objects.count() == 3
    assert Token.objects.get().key == token
    assert "admin / admin-demo-pass" in out  # still the demo password: shown again


@pytest.mark.django_db
def test_a_changed_password_is_not_printed_and_if_empty_adds_nothing(media):
    seed(count=5)
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("something-else-entirely")
    admin.save()
    out = seed(count=5, if_empty=True)
    assert "admin / (password unchanged)" in out
    assert "something-else" not in out
    assert Result.objects.count() == 5


@pytest.mark.django_db
def test_later_inserts_do_not_collide_with_seeded_ids(media):
    seed(count=10, no_accounts=True)
    template = Result.objects.first()
    template.pk, template.task_id = None, "after-seeding"
    template.save()
    assert template.pk > Result.objects.exclude(pk=template.pk).order_by("-pk").first().pk


@pytest.mark.django_db
def test_large_runs_go_in_chunks_and_reuse_templates(media, monkeypatch):
    monkeypatch.setattr(seed_demo, "MAX_TEMPLATES", 12)
    monkeypatch.setattr(seed_demo, "PG_CHUNK", 10)
    monkeypatch.setattr(seed_demo, "ORM_CHUNK", 10)
    out = seed(count=35, no_accounts=True)
    assert Result.objects.count() == 35
    assert ResultScene.objects.count() == sum(
        len(r) for r in Result.objects.values_list("scene_results", flat=True)
    )
    assert "35 / 35 results (100%)" in out
    assert "~" in out  # the mix is estimated when templates repeat


@pytest.mark.django_db
def test_awkward_text_and_json_survive_the_bulk_insert():
    # COPY's text format has its own escapes: tabs, newlines and backslashes must round-trip.
    text = 'tab\there\nnew line \\N back\\slash "quoted" zero\u200bwidth а'
    scene_results = [
        {
            "scene": "antispam",
            "label": "ad",
            "suggestion": "review",
            "rate": 70.5,
            "details": [{"label": "ad", "contexts": [{"context": text, "positions": []}]}],
        }
    ]
    template = seed_demo.text_template(random.Random(0), demo.make_texts(SEED, 1)[0], "pass", "x")
    template = dataclasses.replace(template, text=text, scene_results=scene_results)
    chunk = seed_demo.RowChunk(
        templates=[template],
        task_ids=["txt-awkward"],
        data_ids=["post-1"],
        urls=[""],
        created_at=[timezone.now()],
    )
    if connection.vendor == "postgresql":
        seed_demo.PostgresInserter([template])(chunk)
    else:
        seed_demo.insert_chunk_orm(chunk)
    stored = Result.objects.get(task_id="txt-awkward")
    assert stored.text == text
    assert stored.scene_results == scene_results
    assert stored.decided_by is None and stored.decided_at is None and stored.fetch_error == ""
    assert stored.scenes.get().rate == 70.5


@pytest.mark.django_db
def test_rejects_a_negative_count(media):
    with pytest.raises(CommandError):
        seed(count=-1)
