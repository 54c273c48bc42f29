"""Counterpoint settings: every knob is an environment variable read here (see README and
.env.example). Defaults give the embedded setup: SQLite in WAL mode under var/, media under
var/media/, Celery on kombu's filesystem transport under var/celery/."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from counterpoint.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("COUNTERPOINT_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
_secret = env_str("SECRET_KEY", "")
if not _secret:
    if not DEBUG and not env_bool("COUNTERPOINT_ALLOW_INSECURE_KEY", False):
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off (set DEBUG=1 for local work, "
            "or SECRET_KEY to a long random string)"
        )
    _secret = "insecure-development-key-do-not-use-in-production"
SECRET_KEY = _secret
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "annotation",
    "models_bridge",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "counterpoint.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "counterpoint.urls"
WSGI_APPLICATION = "counterpoint.wsgi.application"
ASGI_APPLICATION = "counterpoint.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- database -------------------------------------------------------------------------
SQLITE_BUSY_TIMEOUT_S = env_float("SQLITE_BUSY_TIMEOUT", 30.0)
_default_sqlite = f"sqlite:///{VAR_DIR / 'counterpoint.sqlite3'}"
_database_url = env_str("DATABASE_URL", _default_sqlite)
try:
    _db = dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
except Exception as exc:  # dj-database-url raises plain ValueError/KeyError on bad URLs
    raise ImproperlyConfigured(
        f"DATABASE_URL={_database_url!r} is not a database URL: {exc}"
    ) from exc
if _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True) if _db[
        "NAME"
    ] != ":memory:" else None
    # IMMEDIATE takes the write lock at BEGIN, so two lease transactions serialise instead of
    # both reading "room left" and deadlocking on upgrade; WAL lets readers run beside them.
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": SQLITE_BUSY_TIMEOUT_S,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    _db.setdefault("TEST", {})["NAME"] = str(VAR_DIR / "test-counterpoint.sqlite3")
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_HEALTH_CHECKS"] = True
    # Separate test databases let several suites share one server (TEST_DATABASE_NAME).
    _db.setdefault("TEST", {})["NAME"] = env_str("TEST_DATABASE_NAME", f"test_{_db['NAME']}")
DATABASES = {"default": _db}
DATABASE_IS_POSTGRES = _db["ENGINE"] == "django.db.backends.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a check: Django calls it after every password change (views, admin, commands).
    {"NAME": "annotation.services.accounts.RevokeTokensOnPasswordChange"},
]
# Failed sign-ins (page and token endpoint) allowed per username and per client address within
# the window; past either, sign-in is refused until the window (from the first failure) ends.
LOGIN_FAILURES_PER_USERNAME = env_int("LOGIN_FAILURES_PER_USERNAME", 5, minimum=1)
LOGIN_FAILURES_PER_ADDRESS = env_int("LOGIN_FAILURES_PER_ADDRESS", 20, minimum=1)
LOGIN_FAILURE_WINDOW_S = env_int("LOGIN_FAILURE_WINDOW_MINUTES", 15, minimum=1) * 60
# API tokens expire this long after they were issued (POST /api/v1/auth/token/ issues anew).
API_TOKEN_TTL_HOURS = env_int("API_TOKEN_TTL_HOURS", 720, minimum=1)
# Who grants the manager role of a campaign: staff only (0), or also its managers (1).
MANAGERS_MAY_GRANT_MANAGER = env_bool("MANAGERS_MAY_GRANT_MANAGER", False)
# --- e-mail (invites) ---------------------------------------------------------------------
# Embedded default: every mail is a file under var/mail/ (read it there); production: SMTP.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "counterpoint@localhost")
# Sign-up links (invites) work once, for this long.
INVITE_TTL_HOURS = env_int("INVITE_TTL_HOURS", 168, minimum=1)
# New accounts a crowd study link makes per client address per hour.
CROWD_ACCOUNTS_PER_ADDRESS_PER_HOUR = env_int("CROWD_ACCOUNTS_PER_ADDRESS_PER_HOUR", 30, minimum=1)
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- cache ----------------------------------------------------------------------------
# Throttles (live scoring per user) and sign-in lockouts live in the cache, so it must be one
# store for every web process: the database on the embedded default (table created by
# migrate), Redis when CACHE_URL names one. A per-process memory cache would multiply every
# limit by the number of gunicorn workers.
_cache_url = env_str("CACHE_URL", "")
CACHES: dict[str, dict[str, object]]
if _cache_url:
    if not _cache_url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"CACHE_URL={_cache_url!r} is not a redis:// URL")
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "counterpoint_cache",
            # Every write counts the table (Django's cull check), so keep it small: past the
            # cap, expired rows go first, then a quarter of the rest (lockouts included).
            "OPTIONS": {"MAX_ENTRIES": 20_000, "CULL_FREQUENCY": 4},
        }
    }

# --- static and media -----------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Import limits (bad input must never exhaust the machine).
IMPORT_MAX_IMAGE_BYTES = env_int("IMPORT_MAX_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1)
IMPORT_MAX_IMAGE_PIXELS = env_int("IMPORT_MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
IMPORT_MAX_TEXT_CHARS = env_int("IMPORT_MAX_TEXT_CHARS", 100_000, minimum=1)
IMPORT_MAX_UPLOAD_BYTES = env_int("IMPORT_MAX_UPLOAD_BYTES", 4 * 1024**3, minimum=1)
IMPORT_MAX_ARCHIVE_BYTES = env_int("IMPORT_MAX_ARCHIVE_BYTES", 4 * 1024**3, minimum=1)
IMPORT_MAX_ARCHIVE_FILES = env_int("IMPORT_MAX_ARCHIVE_FILES", 200_000, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 20 * 1024 * 1024)

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "annotation.api.authentication.ExpiringTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Bounded depth, no lone surrogates or NULs (counterpoint/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "counterpoint.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "counterpoint.errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "live_score": env_str("LIVE_SCORE_RATE", "20/second"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Counterpoint API",
    "DESCRIPTION": "Human annotation and counterfactual collection on multimodal data.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets are served from this server (no CDN: the machine may be offline).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several tables have a `kind` or `status` field; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "ModelVersionKindEnum": "models_bridge.models.ModelVersion.Kind",
        "AssignmentKindEnum": "annotation.models.Assignment.Kind",
        "AssignmentStatusEnum": "annotation.models.Assignment.Status",
        "JobKindEnum": "annotation.models.Job.Kind",
        "JobStatusEnum": "annotation.models.Job.Status",
        "CampaignStatusEnum": "annotation.models.Campaign.Status",
        "EditStatusEnum": "annotation.models.CounterfactualEdit.Status",
    },
}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery"
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange tables too, or kombu writes them to ./control in whatever folder it runs.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3600)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3900)
CELERY_TASK_DEFAULT_QUEUE = "celery"
# A running job refreshes its heartbeat every third of this; a job whose heartbeat is older is
# taken over by the next delivery of its task (its worker died).
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 120, minimum=3)
# Dashboard freshness (docs/dashboard.md "Freshness"): a campaign's stored figures older than
# DASHBOARD_CACHE_SECONDS are refreshed (0: on every request); a campaign with at most
# DASHBOARD_INLINE_MAX_ANNOTATIONS annotations is recomputed within the request (its figures
# take well under 300 ms), a bigger one by a Celery task while the request serves the stored
# figures; a refresh claim or request older than DASHBOARD_REFRESH_EXPIRY_SECONDS is dead.
DASHBOARD_CACHE_SECONDS = env_float("DASHBOARD_CACHE_SECONDS", 10.0)
DASHBOARD_INLINE_MAX_ANNOTATIONS = env_int("DASHBOARD_INLINE_MAX_ANNOTATIONS", 20_000, minimum=0)
DASHBOARD_REFRESH_EXPIRY_SECONDS = env_int("DASHBOARD_REFRESH_EXPIRY_SECONDS", 300, minimum=10)

# --- model bridge ---------------------------------------------------------------------
MODELS_DIR = Path(env_str("COUNTERPOINT_MODELS_DIR", str(BASE_DIR / "fixtures" / "models")))
REMOTE_MODEL_TIMEOUT_S = env_float("REMOTE_MODEL_TIMEOUT", 2.0)
REMOTE_MODEL_RETRIES = env_int("REMOTE_MODEL_RETRIES", 2, minimum=0)
# What campaign managers who are not staff may register through the API: entry-point module
# prefixes (an entry point is code this server runs) and remote model hosts (this server
# sends requests there). Empty by default: only staff register those kinds.
MODEL_ENTRYPOINT_ALLOWED_MODULES = env_list("MODEL_ENTRYPOINT_ALLOWED_MODULES", [])
REMOTE_MODEL_ALLOWED_HOSTS = env_list("REMOTE_MODEL_ALLOWED_HOSTS", [])
# torch intra-op threads per process for live scoring (bulk workers pass the core count).
COUNTERPOINT_TORCH_THREADS = env_int("COUNTERPOINT_TORCH_THREADS", 1, minimum=1)
# In-process model calls (TorchScript, entry points): wall-time limit per live call (one or
# two inputs) and per bulk batch, and how long
# a model that overran is left alone. Packages are first loaded, scanned and test-run in a
# confined child process with these limits (docs/models.md).
MODEL_CALL_TIMEOUT_S = env_float("MODEL_CALL_TIMEOUT", 5.0)
MODEL_BATCH_CALL_TIMEOUT_S = env_float("MODEL_BATCH_CALL_TIMEOUT", 120.0)
MODEL_CALL_COOLDOWN_S = env_float("MODEL_CALL_COOLDOWN", 60.0)
# Background-pool EMAP of each stored edit, for factorized models only (2M fusion-head calls
# per edit, in the scoring worker); 0 turns it off (docs/analysis.md).
EMAP_EDIT_POOL_SIZE = env_int("EMAP_EDIT_POOL_SIZE", 64, minimum=0)
MODEL_PACKAGE_CHECK_TIMEOUT_S = env_float("MODEL_PACKAGE_CHECK_TIMEOUT", 60.0)
MODEL_PACKAGE_CHECK_MEMORY_MB = env_int("MODEL_PACKAGE_CHECK_MEMORY_MB", 2048, minimum=256)
# auto: chroot + setuid(nobody) as root, a user namespace otherwise; "root"/"userns" force one.
MODEL_SANDBOX_MODE = env_str("MODEL_SANDBOX_MODE", "auto")

# --- security in production -----------------------------------------------------------
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
