"""Settings for the Moderation Console, read from the environment.

The defaults suit a fresh checkout: SQLite in the project folder and Celery tasks
run in-process. Every variable is listed in `.env.example`.
"""

import base64
import hashlib
import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")

# Secrets kept in the database (callback signing secrets) are encrypted with this Fernet key
# (moderation_console.crypto); a comma-separated list rotates keys: the first encrypts, all
# decrypt. Make one with:
#   python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'
FIELD_ENCRYPTION_KEY = os.environ.get("FIELD_ENCRYPTION_KEY", "")
if not FIELD_ENCRYPTION_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is required when DEBUG is off")
    # Demo and tests: derived from SECRET_KEY, so it stays the same across restarts.
    FIELD_ENCRYPTION_KEY = base64.urlsafe_b64encode(
        hashlib.sha256(f"field-encryption:{SECRET_KEY}".encode()).digest()
    ).decode()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "audit",
    "samples",
    "policies",
    "green",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "moderation_console.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "moderation_console.wsgi.application"

if db_url := os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(db_url, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
            # Writers take the lock when their transaction begins: ingest's check for a task
            # id and its insert then happen with no other writer in between.
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# The request cap of the results API: 100 items, a few inline images at most.
# A larger body is refused with 413 before it is parsed.
RESULTS_MAX_REQUEST_BYTES = env_int("RESULTS_MAX_REQUEST_BYTES", 32 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = RESULTS_MAX_REQUEST_BYTES
RESULTS_MAX_ITEMS = 100
RESULTS_MAX_TEXT_CHARS = 10_000
RESULTS_MAX_IMAGE_BYTES = env_int("RESULTS_MAX_IMAGE_BYTES", 10 * 1024 * 1024)
RESULTS_MAX_IMAGE_PIXELS = env_int("RESULTS_MAX_IMAGE_PIXELS", 50_000_000)
RESULTS_MAX_VIDEO_BYTES = env_int("RESULTS_MAX_VIDEO_BYTES", 200 * 1024 * 1024)
RESULT_RETENTION_DAYS = env_int("RESULT_RETENTION_DAYS", 7)
# After the purge a result's task id still answers 410 Gone (not 404) for this many days.
RESULT_STUB_DAYS = env_int("RESULT_STUB_DAYS", 30)

# Fetching image and video URLs (audit.fetch): internal addresses are refused unless
# a network is named here, e.g. FETCH_ALLOWED_NETWORKS=10.1.2.0/24 for an internal CDN.
FETCH_TIMEOUT_SECONDS = float(os.environ.get("FETCH_TIMEOUT_SECONDS", "10"))
FETCH_MAX_REDIRECTS = env_int("FETCH_MAX_REDIRECTS", 3)
FETCH_ALLOWED_NETWORKS = [ipaddress.ip_network(n) for n in env_list("FETCH_ALLOWED_NETWORKS")]
FETCH_MAX_ATTEMPTS = env_int("FETCH_MAX_ATTEMPTS", 4)

# Callbacks (audit.callbacks): POSTed under the same address rules as fetching.
CALLBACK_TIMEOUT_SECONDS = float(os.environ.get("CALLBACK_TIMEOUT_SECONDS", "10"))
CALLBACK_MAX_ATTEMPTS = env_int("CALLBACK_MAX_ATTEMPTS", 8)
CALLBACK_RETENTION_DAYS = env_int("CALLBACK_RETENTION_DAYS", 30)  # the delivery log
# The account id in the checksum of Alibaba-form callbacks (green.callbacks): set it to the
# Alibaba account ID (UID) your clients' callback receivers already check against.
GREEN_CALLBACK_UID = os.environ.get("GREEN_CALLBACK_UID", "")
# AccessKey signatures (green.keystore): with a Redis URL, the replay store is Redis (SET NX)
# and a revoked key is refused at once by every process; without, the database table, and
# other processes see a revocation within ACCESS_KEY_CACHE_SECONDS.
GREEN_REDIS_URL = os.environ.get("GREEN_REDIS_URL", "")
ACCESS_KEY_CACHE_SECONDS = float(os.environ.get("ACCESS_KEY_CACHE_SECONDS", "5"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "audit.api_errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_RATES": {},
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "Moderation Console API",
    "DESCRIPTION": (
        "Results of automated content moderation, and the human decisions on them. "
        "Authenticate with `Authorization: Token <key>`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "REDOC_DIST": "SIDECAR",
    # One name per choice set, instead of the generated Image56aEnum and the like.
    "ENUM_NAME_OVERRIDES": {
        "SuggestionEnum": "audit.models.Suggestion",
        "MediaTypeEnum": "audit.models.MediaType",
        "DecisionSuggestionEnum": ["pass", "block"],
        "CategoryEnum": "policies.models.CATEGORY_CHOICES",
    },
}

# Web and worker processes load their in-memory fingerprint indexes when they start, in the
# background (samples.warmup), instead of making their first search wait 10-16 s for it.
INDEX_WARMUP = env_bool("INDEX_WARMUP", default=True)
# The index of images' cropped forms switches to multi-index hashing once large (samples.index
# MULTI_HASH_FROM, samples.multihash): faster searches, but ~0.1 KB per code in every process
# (~0.1 GB at 1M images' ~1M cropped forms). False keeps the flat scan (~0.04 KB a code).
CROP_INDEX_MULTI_HASH = env_bool("CROP_INDEX_MULTI_HASH", default=True)
# Images are also matched when cropped, bordered, captioned or turned a little (issue 8: the
# cropped forms and crophash, samples.matching). False matches images as before (exact, PDQ and
# its flipped/turned forms, flat layouts) and loads neither index; the rows are still stored.
IMAGE_CROP_MATCHING = env_bool("IMAGE_CROP_MATCHING", default=True)

# Celery: with no broker configured, tasks run in-process so the demo needs no services.
# (memory:// then, so nothing ever falls back to Celery's default amqp://localhost).
CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
# Beat reads its jobs from the database (django-celery-beat), where admins change them; these
# are the defaults each job starts with (audit.schedules creates the missing ones).
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
PERIODIC_TASKS = {
    "results-purge": {
        "task": "audit.tasks.results_purge",
        "schedule": timedelta(hours=1),
        "description": "Removes expired results (a day partition at a time on PostgreSQL).",
    },
    "decisions-propagate-pending": {
        "task": "audit.tasks.decisions_propagate_pending",
        "schedule": timedelta(seconds=30),
        "description": "Re-sends propagations whose task was lost.",
    },
    "results-fetch-stale": {
        "task": "audit.tasks.results_fetch_stale",
        "schedule": timedelta(minutes=5),
        "description": "Re-sends URL fetches whose task was lost.",
    },
    # Callback deliveries live in the database: this sends the due ones (first tries whose
    # message was lost, and retries after their backoff).
    "callbacks-send-due": {
        "task": "audit.tasks.callbacks_send_due",
        "schedule": timedelta(seconds=60),
        "description": "Sends callback deliveries that are due (lost messages, retries).",
    },
    "callbacks-purge": {
        "task": "audit.tasks.callbacks_purge",
        "schedule": timedelta(hours=6),
        "description": "Removes finished callback deliveries past CALLBACK_RETENTION_DAYS.",
    },
    # The replay store of AccessKey signatures (green): rows past the 15-minute date window.
    "green-seen-requests-purge": {
        "task": "green.tasks.seen_requests_purge",
        "schedule": timedelta(minutes=15),
        "description": "Forgets AccessKey request signatures past their 15-minute window.",
    },
    # Async image scans live in the database too: this re-sends the ones whose message was
    # lost, for clients that wait for the callback instead of polling.
    "green-image-scans-resend": {
        "task": "green.tasks.image_scans_resend_pending",
        "schedule": timedelta(seconds=60),
        "description": "Re-sends async image scans still pending after 2 minutes.",
    },
    "green-task-callbacks-purge": {
        "task": "green.tasks.task_callbacks_purge",
        "schedule": timedelta(hours=6),
        "description": "Forgets the callback URLs of async scans whose results have expired.",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "faiss.loader": {"level": "WARNING"},  # which CPU build it picked, at every start
    },
}
