"""`manage.py seed_demo`: demo accounts and a week of moderation results to look at.

Media files are generated once into a small pool under MEDIA_ROOT/demo/<seed>/ and shared
by many result rows, so a million rows cost a few megabytes of files. Rows are added on
every run (accounts are reused): run `flush` first for a clean slate.

On PostgreSQL rows go in with COPY, in chunks of one transaction each; elsewhere with
bulk_create.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from rest_framework.authtoken.models import Token

from audit import demo, partitions, services
from audit.models import FetchStatus, MediaType, Result, ResultScene, ResultStub, VerdictSource
from audit.services.ingest import stub_of

DEFAULT_COUNT = 600
DEFAULT_SEED = 1

SUGGESTION_MIX = ((demo.PASS, 60), (demo.REVIEW, 25), (demo.BLOCK, 15))
MEDIA_MIX = ((MediaType.IMAGE, 60), (MediaType.VIDEO, 10), (MediaType.TEXT, 30))
BIZ_TYPES = {
    MediaType.IMAGE: (("default", 70), ("avatars", 20), ("live", 10)),
    MediaType.VIDEO: (("default", 60), ("live", 40)),
    MediaType.TEXT: (("default", 55), ("comments", 45)),
}
DATA_ID_PREFIXES = {"default": "post", "avatars": "user", "live": "live", "comments": "comment"}
TASK_ID_PREFIXES = {MediaType.IMAGE: "img", MediaType.VIDEO: "vid", MediaType.TEXT: "txt"}
URL_SHARE = 0.3  # of image rows that also carry the URL the file was fetched from

# Distinct machine results to draw rows from: beyond this, rows reuse them (with their own
# ids, times and data ids), which keeps a million rows cheap to generate.
MAX_TEMPLATES = 20_000
PG_CHUNK = 50_000
ORM_CHUNK = 2_000
YOUNG_MARGIN = timedelta(minutes=30)
FINGERPRINT_LIMIT = 20_000


class Command(BaseCommand):
    help = "Create demo accounts and a realistic week of image, video and text results."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="results to add")
        parser.add_argument(
            "--seed", type=int, default=DEFAULT_SEED, help="seed of media and results"
        )
        parser.add_argument("--no-accounts", action="store_true", help="skip the demo accounts")
        parser.add_argument(
            "--if-empty", action="store_true", help="add results only if the store has none"
        )

    def handle(self, *args, count: int, seed: int, no_accounts: bool, if_empty: bool, **options):
        if count < 0:
            raise CommandError("--count must be 0 or more")
        if not no_accounts:
            self.stdout.write(ensure_accounts())
        if if_empty and Result.objects.exists():
            self.stdout.write("The result store has results already: none added.")
            return
        if count:
            self.seed_results(count, seed)
            self.fingerprint(count)

    def fingerprint(self, count: int) -> None:
        # Demo decisions should reach the demo's near-duplicates, so they get fingerprints;
        # for a benchmark-sized store that is left to `manage.py fingerprint_results`.
        if count > FINGERPRINT_LIMIT:
            self.stdout.write("Not fingerprinted (run `manage.py fingerprint_results`).")
            return
        started = time.monotonic()
        done = services.results_fingerprint_missing()
        self.stdout.write(f"Fingerprinted {done:,} results ({time.monotonic() - started:.1f} s).")

    def seed_results(self, count: int, seed: int) -> None:
        started = time.monotonic()
        rng = random.Random(seed)
        pool = build_media_pool(seed, count)
        self.stdout.write(
            f"Media pool: {len(pool.images)} images, {len(pool.videos)} videos, "
            f"{len(pool.texts)} texts ({time.monotonic() - started:.1f} s)"
        )
        templates = build_templates(rng, pool, min(count, MAX_TEMPLATES))
        postgres = connection.vendor == "postgresql"
        insert = PostgresInserter(templates) if postgres else insert_chunk_orm
        chunk_size = PG_CHUNK if postgres else ORM_CHUNK

        done = 0
        for chunk in generate_chunks(rng, templates, count, chunk_size):
            with transaction.atomic():
                insert(chunk)
            done += len(chunk.templates)
            if count > chunk_size:
                self.stdout.write(f"  {done:>10,} / {count:,} results ({done * 100 // count}%)")
        if postgres and count > chunk_size:
            analyze()

        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {count:,} results ({media_counts(templates, count)}) in {elapsed:.1f} s "
                f"({count / elapsed:,.0f} rows/s)."
            )
        )


# --- Accounts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password_env: str
    default_password: str | None  # None: no password, the account uses its API token
    staff: bool
    group: str | None  # the role, see audit/migrations/0002_groups.py
    permissions: tuple[str, ...]


ACCOUNTS = (
    DemoAccount("admin", "DEMO_ADMIN_PASSWORD", "admin-demo-pass", True, "Admin", ()),
    DemoAccount(
        "reviewer",
        "DEMO_REVIEWER_PASSWORD",
        "reviewer-demo-pass",
        False,
        "Reviewer",
        (),
    ),
    DemoAccount("api-client", "", None, False, None, ("add_result", "view_result", "add_decision")),
)


def ensure_accounts() -> str:
    """Create the demo accounts, or bring existing ones back to their roles. A password is
    only set on creation, so a changed password survives a re-run. Returns the login hint."""
    passwords = {account.username: ensure_account(account) for account in ACCOUNTS}
    token, _ = Token.objects.get_or_create(user=get_user_model().objects.get(username="api-client"))

    def login(username: str) -> str:
        return f"{username} / {passwords[username] or '(password unchanged)'}"

    return "\n".join(
        (
            "Logins:",
            f"  {login('admin')}  (Django admin)",
            f"  {login('reviewer')}",
            f"API token for api-client: {token.key}",
        )
    )


def ensure_account(account: DemoAccount) -> str | None:
    """Returns the account's demo password, or None if it has none or it was changed."""
    user, created = get_user_model().objects.get_or_create(username=account.username)
    user.is_active = True
    user.is_staff = account.staff
    user.is_superuser = account.staff  # the only staff account is the superuser
    if account.default_password is None:
        password = None
        user.set_unusable_password()
    else:
        password = os.environ.get(account.password_env) or account.default_password
        if created:
            user.set_password(password)
        elif not user.check_password(password):
            password = None  # changed since: not ours to print
    user.save()
    if account.group:
        user.groups.add(Group.objects.get(name=account.group))
    if account.permissions:
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="audit", codename__in=account.permissions
            )
        )
    return password


# --- Media pool -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredImage:
    item: demo.DemoImage
    name: str  # the name in storage, as the FileField keeps it


@dataclass(frozen=True)
class StoredVideo:
    item: demo.DemoVideo
    name: str


@dataclass(frozen=True)
class MediaPool:
    images: list[StoredImage]
    videos: list[StoredVideo]
    texts: list[demo.DemoText]


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def build_media_pool(seed: int, count: int) -> MediaPool:
    """Generate the media for `count` rows and store the files. Small counts get a small
    pool; a large one tops out at ~150 images and ~12 videos."""
    images = demo.make_images(seed, clamp(count // 8, 3, 60), max_total=150)
    videos = demo.make_videos(seed, clamp(count // 100, 2, 6), max_total=12)
    texts = demo.make_texts(seed, clamp(count // 5, 6, 200))
    return MediaPool(
        images=[
            StoredImage(i, store(f"demo/{seed}/img/{i.key}.{i.extension}", i.data)) for i in images
        ],
        videos=[StoredVideo(v, store(f"demo/{seed}/vid/{v.key}.mp4", v.data)) for v in videos],
        texts=texts,
    )


def store(name: str, data: bytes) -> str:
    # Overwrite rather than let storage pick a new name: rows of earlier runs point here, and
    # the same seed draws the same file.
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(data))


# --- Row templates ----------------------------------------------------------------------


@dataclass(frozen=True)
class RowTemplate:
    """Everything of a row but its id, task_id, data_id, url and times."""

    media_type: str
    biz_type: str
    file: str
    text: str
    content_format: str
    width: int | None
    height: int | None
    duration: float | None
    fetch_status: str
    scene_results: list[dict]
    frames: list[dict]
    machine_suggestion: str
    machine_label: str
    url_extension: str  # "" when rows of this template have no URL

    @property
    def data_id_prefix(self) -> str:
        return DATA_ID_PREFIXES[self.biz_type]


def stratified(rng: random.Random, n: int, mix: tuple[tuple[str, int], ...]) -> list[str]:
    """n values in the exact proportions of `mix` (largest remainder), shuffled. Each value
    appears at least once when n allows, so small runs still show every kind."""
    total = sum(weight for _, weight in mix)
    exact = [(value, n * weight / total) for value, weight in mix]
    counts = {value: int(share) for value, share in exact}
    by_remainder = sorted(exact, key=lambda vs: vs[1] - int(vs[1]), reverse=True)
    for value, _ in by_remainder[: n - sum(counts.values())]:
        counts[value] += 1
    if n >= len(mix):
        for value, _ in mix:
            if counts[value] == 0:
                counts[max(counts, key=counts.get)] -= 1
                counts[value] = 1
    values = [value for value, k in counts.items() for _ in range(k)]
    rng.shuffle(values)
    return values


def build_templates(rng: random.Random, pool: MediaPool, n: int) -> list[RowTemplate]:
    """n templates with the media and suggestion mixes. Media are taken in turn, so every
    file of the pool is used once there are enough rows."""
    media_types = stratified(rng, n, MEDIA_MIX)
    suggestions = stratified(rng, n, SUGGESTION_MIX)
    risky_texts = [t for t in pool.texts if t.category != demo.NORMAL]
    turns = {"image": 0, "video": 0, "text": 0, "risky": 0}

    def next_of(kind: str, items: list):
        turns[kind] += 1
        return items[(turns[kind] - 1) % len(items)]

    templates = []
    for media_type, suggestion in zip(media_types, suggestions, strict=True):
        biz_type = pick(rng, BIZ_TYPES[media_type])
        if media_type == MediaType.IMAGE:
            image = next_of("image", pool.images)
            templates.append(image_template(rng, image, suggestion, biz_type))
        elif media_type == MediaType.VIDEO:
            video = next_of("video", pool.videos)
            templates.append(video_template(rng, video, suggestion, biz_type))
        else:
            # Only texts with something to flag can be flagged.
            flaggable = suggestion != demo.PASS and risky_texts
            text = next_of("risky", risky_texts) if flaggable else next_of("text", pool.texts)
            templates.append(text_template(rng, text, suggestion, biz_type))
    return templates


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights)[0]


def media_template(media_type: str, scene_results: list[dict], **fields) -> RowTemplate:
    suggestion, label = demo.worst_verdict(scene_results)
    defaults = {
        "file": "",
        "text": "",
        "content_format": "",
        "width": None,
        "height": None,
        "duration": None,
        "fetch_status": FetchStatus.NONE.value,
        "frames": [],
        "url_extension": "",
    }
    return RowTemplate(
        media_type=str(media_type),
        scene_results=scene_results,
        machine_suggestion=suggestion,
        machine_label=label,
        **(defaults | fields),
    )


def image_template(
    rng: random.Random, image: StoredImage, suggestion: str, biz_type: str
) -> RowTemplate:
    item = image.item
    return media_template(
        MediaType.IMAGE,
        demo.image_results(rng, item, suggestion),
        biz_type=biz_type,
        file=image.name,
        content_format=item.format,
        width=item.width,
        height=item.height,
        fetch_status=FetchStatus.DONE.value,
        url_extension=f".{item.extension}" if rng.random() < URL_SHARE else "",
    )


def video_template(
    rng: random.Random, video: StoredVideo, suggestion: str, biz_type: str
) -> RowTemplate:
    item = video.item
    scene_results, frames = demo.video_results(rng, item, suggestion)
    return media_template(
        MediaType.VIDEO,
        scene_results,
        biz_type=biz_type,
        file=video.name,
        content_format=item.format,
        width=item.width,
        height=item.height,
        duration=item.duration,
        fetch_status=FetchStatus.DONE.value,
        frames=frames,
    )


def text_template(
    rng: random.Random, text: demo.DemoText, suggestion: str, biz_type: str
) -> RowTemplate:
    return media_template(
        MediaType.TEXT, demo.text_results(rng, text, suggestion), biz_type=biz_type, text=text.text
    )


def media_counts(templates: list[RowTemplate], count: int) -> str:
    """The media mix, as planned when every template is used once, else estimated."""
    tally = {t: 0 for t in MediaType.values}
    for template in templates:
        tally[template.media_type] += 1
    exact = len(templates) == count
    return ", ".join(
        f"{'' if exact else '~'}{n * count // len(templates):,} {t}" for t, n in tally.items()
    )


# --- Rows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowChunk:
    """Rows as parallel lists: cheaper than an object per row at a million rows."""

    templates: list[RowTemplate]
    task_ids: list[str]
    data_ids: list[str]
    urls: list[str]
    created_at: list[datetime]


def generate_chunks(
    rng: random.Random, templates: list[RowTemplate], count: int, chunk_size: int
) -> Iterator[RowChunk]:
    created_at = creation_times(rng, count)
    for start in range(0, count, chunk_size):
        size = min(chunk_size, count - start)
        if count <= len(templates):
            chosen = templates[start : start + size]
        else:
            chosen = rng.choices(templates, k=size)
        yield RowChunk(
            templates=chosen,
            task_ids=task_ids(chosen),
            data_ids=[f"{t.data_id_prefix}-{rng.randrange(100_000, 1_000_000)}" for t in chosen],
            urls=[
                f"https://cdn.example.com/u/{rng.randrange(1, 10_000_000)}{t.url_extension}"
                if t.url_extension
                else ""
                for t in chosen
            ],
            created_at=created_at[start : start + size],
        )


def creation_times(rng: random.Random, count: int) -> list[datetime]:
    """Uniform over the last week (or the retention period if shorter), oldest first so ids
    grow with time as in a live store. Whole microseconds, so expires_at is exact."""
    days = max(1, min(7, settings.RESULT_RETENTION_DAYS))
    newest = datetime.now(UTC) - YOUNG_MARGIN
    span = int((timedelta(days=days) - YOUNG_MARGIN).total_seconds() * 1_000_000)
    oldest = newest - timedelta(microseconds=span)
    offsets = sorted(rng.randrange(span) for _ in range(count))
    return [oldest + timedelta(microseconds=offset) for offset in offsets]


def task_ids(templates: list[RowTemplate]) -> list[str]:
    # Random, not seeded: a re-run with the same seed must not collide with earlier rows.
    hex_digits = os.urandom(16 * len(templates)).hex()
    return [
        TASK_ID_PREFIXES[t.media_type] + hex_digits[32 * i : 32 * i + 32]
        for i, t in enumerate(templates)
    ]


def retention() -> timedelta:
    return timedelta(days=settings.RESULT_RETENTION_DAYS)


def insert_chunk_orm(chunk: RowChunk) -> None:
    keep = retention()
    results = Result.objects.bulk_create(
        [
            Result(
                media_type=t.media_type,
                task_id=task_id,
                data_id=data_id,
                biz_type=t.biz_type,
                url=url,
                file=t.file,
                text=t.text,
                content_format=t.content_format,
                width=t.width,
                height=t.height,
                duration=t.duration,
                fetch_status=t.fetch_status,
                scene_results=t.scene_results,
                frames=t.frames,
                machine_suggestion=t.machine_suggestion,
                machine_label=t.machine_label,
                suggestion=t.machine_suggestion,
                label=t.machine_label,
                verdict_source=VerdictSource.MACHINE,
                reviewed=False,
                created_at=created,
                expires_at=created + keep,
            )
            for t, task_id, data_id, url, created in zip(
                chunk.templates,
                chunk.task_ids,
                chunk.data_ids,
                chunk.urls,
                chunk.created_at,
                strict=True,
            )
        ]
    )
    ResultScene.objects.bulk_create(
        [
            ResultScene(
                result_id=result.pk,
                scene=r["scene"],
                label=r["label"],
                suggestion=r["suggestion"],
                rate=r["rate"],
            )
            for result in results
            for r in result.scene_results
        ]
    )
    ResultStub.objects.bulk_create(stub_of(result) for result in results)


# --- PostgreSQL COPY --------------------------------------------------------------------

# Columns that vary per row come first; the rest of a row is the same for all rows of a
# template, so it is built once per template.
ROW_FIELDS = ("id", "task_id", "data_id", "url", "created_at", "expires_at")
STUB_FIELDS = ("result_id", "task_id", "media_type", "expires_at")
TEMPLATE_FIELDS = (
    "media_type",
    "biz_type",
    "file",
    "text",
    "content_format",
    "width",
    "height",
    "duration",
    "fetch_status",
    "fetch_error",
    "fetch_attempts",
    "scene_results",
    "frames",
    "machine_suggestion",
    "machine_label",
    "suggestion",
    "label",
    "verdict_source",
    "reviewed",
    "decided_by",
    "decided_at",
)
SCENE_FIELDS = ("result", "scene", "label", "suggestion", "rate")


@dataclass(frozen=True)
class CopyTemplate:
    row_tail: tuple  # the values of TEMPLATE_FIELDS
    scenes: tuple[tuple, ...]  # the values of SCENE_FIELDS but the result id, per scene


def copy_template(template: RowTemplate) -> CopyTemplate:
    values = {
        # JSON as text: COPY's text format parses it into jsonb on the server.
        "scene_results": json.dumps(template.scene_results, ensure_ascii=False),
        "frames": json.dumps(template.frames, ensure_ascii=False),
        "fetch_error": "",
        "fetch_attempts": 0,
        "suggestion": template.machine_suggestion,
        "label": template.machine_label,
        "verdict_source": VerdictSource.MACHINE.value,
        "reviewed": False,
        "decided_by": None,
        "decided_at": None,
    }
    tail = tuple(values[f] if f in values else getattr(template, f) for f in TEMPLATE_FIELDS)
    scenes = tuple(tuple(r[f] for f in SCENE_FIELDS[1:]) for r in template.scene_results)
    return CopyTemplate(tail, scenes)


def reserve_ids(cursor, created_at: list[datetime]) -> list[int]:
    """Ids for rows created at `created_at`: each carries its UTC day, like the ids the
    database gives (audit.partitions), so the rows sit in their day's partition. The serials
    come from the result id sequence, which so stays ahead of every row."""
    table = Result._meta.db_table
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
        [table, len(created_at)],
    )
    serials = [row[0] for row in cursor.fetchall()]
    return [partitions.day_id(c.date(), s) for c, s in zip(created_at, serials, strict=True)]


class PostgresInserter:
    """Writes chunks with COPY, row by row through psycopg's write_row(). Formatting COPY
    text here and writing it in one go measured the same (~50 s a million rows either way:
    the server's index upkeep dominates), and write_row() does the escaping itself."""

    def __init__(self, templates: list[RowTemplate]):
        # Keyed by identity: the templates live as long as this run.
        self.copy_templates = {id(t): copy_template(t) for t in templates}
        self.keep = retention()

    def __call__(self, chunk: RowChunk) -> None:
        with connection.cursor() as django_cursor:
            days = {c.date() for c in chunk.created_at}
            partitions.ensure_days(django_cursor, min(days), max(days))
            ids = reserve_ids(django_cursor, chunk.created_at)
            cursor = django_cursor.cursor  # psycopg's own, which has copy()
            templates = [self.copy_templates[id(t)] for t in chunk.templates]
            with copy_into(cursor, Result, ROW_FIELDS + TEMPLATE_FIELDS) as copy:
                for rid, t, task_id, data_id, url, created in zip(
                    ids,
                    templates,
                    chunk.task_ids,
                    chunk.data_ids,
                    chunk.urls,
                    chunk.created_at,
                    strict=True,
                ):
                    copy.write_row(
                        (rid, task_id, data_id, url, created, created + self.keep) + t.row_tail
                    )
            with copy_into(cursor, ResultScene, SCENE_FIELDS) as copy:
                for rid, t in zip(ids, templates, strict=True):
                    for scene in t.scenes:
                        copy.write_row((rid, *scene))
            with copy_into(cursor, ResultStub, STUB_FIELDS) as copy:
                for rid, template, task_id, created in zip(
                    ids, chunk.templates, chunk.task_ids, chunk.created_at, strict=True
                ):
                    copy.write_row((rid, task_id, template.media_type, created + self.keep))


def copy_into(cursor, model, fields: tuple[str, ...]):
    columns = ", ".join(connection.ops.quote_name(model._meta.get_field(f).column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    return cursor.copy(f"COPY {table} ({columns}) FROM STDIN")


def analyze() -> None:
    # Fresh statistics, so the Audit queries plan for the new row counts right away.
    tables = (Result._meta.db_table, ResultScene._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(connection.ops.quote_name(t) for t in tables))
