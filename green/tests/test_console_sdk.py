"""The console API through the official SDK (alibabacloud-green20170823), against the live
server."""

import io
from urllib.parse import urlsplit

import pytest
from alibabacloud_green20170823 import models as green_models
from alibabacloud_green20170823.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException
from aliyunsdkgreen.request.v20180509 import ImageSyncScanRequest, TextScanRequest
from django.test import Client as PageClient
from PIL import Image, ImageDraw

from audit.models import Decision, Result
from audit.tests.factories import user_in
from audit.tests.test_propagation import SPAM, SPAM_COPY
from green import services
from green.tests.conftest import user_with
from green.tests.test_scan_sdk import SCENES, block_sample, png_bytes
from policies.models import Policy
from samples import matching
from samples import services as sample_services
from samples.models import Keyword, Sample


def console(live_server, key_id: str, secret: str, **config) -> Client:
    """The SDK's own client, pointed at the console: endpoint and protocol are all it takes."""
    return Client(
        open_api_models.Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=urlsplit(live_server.url).netloc,
            protocol="http",
            region_id="cn-shanghai",
            **config,
        )
    )


@pytest.fixture
def admin_key(transactional_db):
    return services.access_key_issue(user=user_in("Admin"), name="console")


@pytest.fixture
def api(live_server, admin_key) -> Client:
    key, secret = admin_key
    return console(live_server, key.access_key_id, secret)


def ingest_texts(*items) -> list[Result]:
    from audit import services as audit_services
    from audit.serializers import IngestSerializer

    data = [
        {
            "dataId": data_id,
            "content": content,
            "results": [
                {"scene": "antispam", "label": label, "suggestion": suggestion, "rate": 90}
            ],
        }
        for data_id, content, suggestion, label in items
    ]
    serializer = IngestSerializer(data={"type": "text", "data": data})
    assert serializer.is_valid(), serializer.errors
    ingested = audit_services.results_ingest(
        media_type="text", biz_type="default", items=serializer.validated_data["data"]
    )
    return [i.result for i in ingested]


def test_describe_audit_content_filters_and_pages(api):
    ingest_texts(
        ("a", "first text to look at", "review", "spam"),
        ("b", "second text to look at", "block", "abuse"),
        ("c", "third text to look at", "review", "spam"),
        ("d", "a clean text", "pass", "normal"),
    )
    page = api.describe_audit_content(
        green_models.DescribeAuditContentRequest(resource_type="TEXT", page_size=2, current_page=1)
    ).body
    assert (page.total_count, page.current_page, page.page_size) == (3, 1, 2)
    assert [c.data_id for c in page.audit_content_list] == ["c", "b"]  # newest first
    second = api.describe_audit_content(
        green_models.DescribeAuditContentRequest(resource_type="TEXT", page_size=2, current_page=2)
    ).body
    assert [c.data_id for c in second.audit_content_list] == ["a"]
    blocked = api.describe_audit_content(
        green_models.DescribeAuditContentRequest(resource_type="TEXT", suggestion="block")
    ).body
    [item] = blocked.audit_content_list
    assert (item.data_id, item.content, item.audit) == ("b", "second text to look at", 0)
    assert (item.results[0].scene, item.results[0].label) == ("antispam", "abuse")
    labelled = api.describe_audit_content(
        green_models.DescribeAuditContentRequest(resource_type="TEXT", label="spam", data_id="a")
    ).body
    assert [c.data_id for c in labelled.audit_content_list] == ["a"]


def stripes_png() -> bytes:
    """A picture nothing like test_propagation's."""
    image = Image.new("RGB", (320, 240), (240, 240, 240))
    draw = ImageDraw.Draw(image)
    for x in range(0, 320, 24):
        draw.rectangle((x, 0, x + 9, 240), fill=(10, 10, 10))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def describe(api, **filters) -> list[str]:
    body = api.describe_audit_content(green_models.DescribeAuditContentRequest(**filters)).body
    return sorted(c.data_id for c in body.audit_content_list)


def test_describe_audit_content_by_library_and_image_sample(api, sdk, media_server):
    data = png_bytes()
    sample, _ = block_sample(data)
    media_server.routes["/copy.png"] = ("image/png", data)
    media_server.routes["/other.png"] = ("image/png", stripes_png())
    tasks = [
        {"dataId": "hit", "url": media_server.url("/copy.png")},
        {"dataId": "miss", "url": media_server.url("/other.png")},
    ]
    sdk.call(ImageSyncScanRequest.ImageSyncScanRequest, {"scenes": SCENES, "tasks": tasks})
    assert describe(api, resource_type="IMAGE") == ["hit", "miss"]

    assert describe(api, resource_type="IMAGE", image_id=str(sample.id)) == ["hit"]
    assert describe(api, resource_type="IMAGE", lib_type="BLACK") == ["hit"]
    assert describe(api, resource_type="IMAGE", lib_type="white") == []
    other, _ = sample_services.sample_add(
        media_type="image",
        suggestion="block",
        label="ad",
        rows=matching.image_rows(stripes_png()),
        image=(stripes_png(), ".png"),
    )
    # Looks like the scanned "miss", but that one was not answered by a library.
    assert describe(api, resource_type="IMAGE", image_id=str(other.id)) == []


def test_describe_audit_content_by_keyword(api, sdk):
    parrots = Keyword.objects.create(
        text="smuggled parrots", label="contraband", suggestion="block"
    )
    hello = Keyword.objects.create(text="hello", label="spam", suggestion="review")
    tasks = [
        {"dataId": "t1", "content": "Got SMUGGLED parrots, cheap"},
        {"dataId": "t2", "content": "My parrot says hello"},
        {"dataId": "t3", "content": "Nothing to see"},
    ]
    sdk.call(TextScanRequest.TextScanRequest, {"scenes": ["antispam"], "tasks": tasks})
    assert describe(api, resource_type="TEXT", keyword_id=str(parrots.id)) == ["t1"]
    assert describe(api, resource_type="TEXT", keyword_id=str(hello.id)) == ["t2"]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"resource_type": "IMAGE", "image_id": "abc"}, "ImageId"),
        ({"resource_type": "IMAGE", "image_id": "987654"}, "ImageId"),
        ({"resource_type": "TEXT", "image_id": "1"}, "ImageId"),
        ({"resource_type": "TEXT", "keyword_id": "-1"}, "KeywordId"),
        ({"resource_type": "TEXT", "keyword_id": "987654"}, "KeywordId"),
        ({"resource_type": "IMAGE", "keyword_id": "1"}, "KeywordId"),
        ({"resource_type": "IMAGE", "lib_type": "GREY"}, "LibType"),
    ],
)
def test_a_bad_library_filter_is_a_400_envelope(api, filters, field):
    with pytest.raises(ClientException) as caught:
        api.describe_audit_content(green_models.DescribeAuditContentRequest(**filters))
    assert (caught.value.code, caught.value.status_code) == ("InvalidParameter", 400)
    assert f"code: 400, {field}" in caught.value.message


def test_mark_audit_content_decides_and_propagates(api, admin_key, live_server):
    first, copy, _ = ingest_texts(
        ("a", SPAM, "review", "ad"),
        ("b", SPAM_COPY, "review", "ad"),
        ("c", "hello", "review", "ad"),
    )
    from audit import services as audit_services

    audit_services.results_fingerprint(result_ids=[first.id, copy.id])
    api.mark_audit_content(
        green_models.MarkAuditContentRequest(
            ids=f"[{first.id}]", audit_result="block", audit_illegal_reasons='["spam"]'
        )
    )
    decision = Decision.objects.get()
    assert (decision.reviewer, decision.suggestion, decision.label) == (
        admin_key[0].user,
        "block",
        "spam",
    )
    copy.refresh_from_db()
    assert (copy.suggestion, copy.verdict_source) == ("block", "propagated")
    assert Sample.objects.filter(decision=decision).exists()
    # The Audit page shows the decision like any other.
    page = PageClient()
    page.force_login(user_in("Reviewer"))
    html = page.get("/audit/", {"type": "text", "status": "reviewed"}).content.decode()
    assert first.task_id in html
    described = api.describe_audit_content(
        green_models.DescribeAuditContentRequest(resource_type="TEXT", audit_result="block")
    ).body
    # The near-copy was blocked by propagation: reviewed, blocked, like the decided one.
    assert {c.data_id for c in described.audit_content_list} == {"a", "b"}
    assert {tuple(c.audit_illegal_reasons) for c in described.audit_content_list} == {("spam",)}


def test_update_audit_range_surfaces_pass_results(api):
    [passed] = ingest_texts(("p", "a perfectly fine text", "pass", "normal"))
    page = PageClient()
    page.force_login(user_in("Reviewer"))
    assert passed.task_id not in page.get("/audit/", {"type": "text"}).content.decode()
    before = api.describe_audit_range().body.audit_range
    assert (before.block, before.review, before.pass_) == (True, True, False)

    api.update_audit_range(green_models.UpdateAuditRangeRequest(audit_range='{"pass": true}'))
    after = api.describe_audit_range().body.audit_range
    assert (after.block, after.review, after.pass_) == (True, True, True)
    assert set(Policy.objects.get(biz_type="default").text_audit_range) == {
        "block",
        "review",
        "pass",
    }
    assert passed.task_id in page.get("/audit/", {"type": "text"}).content.decode()


def test_update_audit_range_sets_every_content_type(api):
    api.update_audit_range(
        green_models.UpdateAuditRangeRequest(audit_range='{"pass": true, "review": false}')
    )
    policy = Policy.objects.get(biz_type="default")
    for media_type in ("image", "video", "text"):
        assert set(policy.audit_range(media_type)) == {"block", "pass"}
    described = api.describe_audit_range().body.audit_range
    assert (described.block, described.review, described.pass_) == (True, False, True)


def test_ranges_that_differ_are_described_as_their_union(api):
    from policies import services as policy_services

    policy_services.policy_update(
        biz_type="default",
        data={"image_audit_range": ["block", "review", "pass"], "text_audit_range": ["block"]},
        user=None,
    )
    described = api.describe_audit_range().body.audit_range
    assert (described.block, described.review, described.pass_) == (True, True, True)
    setting = api.describe_audit_setting(green_models.DescribeAuditSettingRequest()).body
    assert setting.audit_range.pass_ is True

    # A key left out stays as each content type has it; a key given is set for all three.
    api.update_audit_range(green_models.UpdateAuditRangeRequest(audit_range='{"block": false}'))
    policy = Policy.objects.get(biz_type="default")
    ranges = [set(policy.audit_range(t)) for t in ("image", "video", "text")]
    assert ranges == [{"review", "pass"}, {"review"}, set()]


@pytest.mark.parametrize("audit_range", ['{"pass": "yes"}', '{"everything": true}', "[true]", "x"])
def test_a_bad_audit_range_is_a_400_envelope(api, audit_range):
    with pytest.raises(ClientException) as caught:
        api.update_audit_range(green_models.UpdateAuditRangeRequest(audit_range=audit_range))
    assert (caught.value.code, caught.value.status_code) == ("InvalidParameter", 400)
    assert "AuditRange" in caught.value.message
    assert set(Policy.objects.get(biz_type="default").text_audit_range) == {"review", "block"}


def test_audit_setting_round_trip(api):
    api.update_audit_setting(
        green_models.UpdateAuditSettingRequest(
            callback="https://hooks.example.com/green", seed="s33d", audit_range='{"review": false}'
        )
    )
    setting = api.describe_audit_setting(green_models.DescribeAuditSettingRequest()).body
    assert (setting.callback, setting.seed) == ("https://hooks.example.com/green", "s33d")
    assert (setting.audit_range.block, setting.audit_range.review) == (True, False)


def test_a_reused_nonce_is_refused(live_server, admin_key):
    key, secret = admin_key
    fixed = open_api_models.GlobalParameters(headers={"x-acs-signature-nonce": "once-only"})
    api = console(live_server, key.access_key_id, secret, global_parameters=fixed)
    api.describe_audit_range()
    with pytest.raises(ClientException) as caught:
        api.describe_audit_range()
    assert caught.value.code == "SignatureNonceUsed"


def test_a_wrong_secret_is_refused(live_server, admin_key):
    api = console(live_server, admin_key[0].access_key_id, "wrong")
    with pytest.raises(ClientException) as caught:
        api.update_audit_range(green_models.UpdateAuditRangeRequest(audit_range='{"pass": true}'))
    assert caught.value.code == "SignatureDoesNotMatch"
    assert set(Policy.objects.get(biz_type="default").text_audit_range) == {"review", "block"}


def test_an_expired_date_is_refused(live_server, admin_key):
    key, secret = admin_key
    old = open_api_models.GlobalParameters(headers={"x-acs-date": "2020-01-01T00:00:00Z"})
    api = console(live_server, key.access_key_id, secret, global_parameters=old)
    with pytest.raises(ClientException) as caught:
        api.describe_audit_range()
    assert caught.value.code == "InvalidTimeStamp.Expired"


def test_a_revoked_key_is_refused(api, admin_key):
    services.access_key_revoke(access_key=admin_key[0])
    with pytest.raises(ClientException) as caught:
        api.describe_audit_range()
    assert caught.value.code == "InvalidAccessKeyId.Inactive"


def test_actions_need_their_permission(live_server, transactional_db):
    key, secret = services.access_key_issue(user=user_with("audit.view_result"))
    api = console(live_server, key.access_key_id, secret)
    with pytest.raises(ClientException) as caught:
        api.update_audit_range(green_models.UpdateAuditRangeRequest(audit_range='{"pass": true}'))
    assert caught.value.code == "Forbidden.RAM"


def test_the_home_page_is_still_the_home_page(client, transactional_db):
    assert client.get("/").status_code == 302  # to the login page
