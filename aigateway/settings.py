"""Settings for aigateway, all deploy-varying values from the environment (or a .env file)."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

# A .env file beside manage.py (or the one ENV_FILE names) fills in what the real
# environment leaves unset.
load_dotenv(os.environ.get("ENV_FILE") or BASE_DIR / ".env", override=False)


def _fail(message: str) -> None:
    raise SystemExit(f"aigateway: configuration error: {message}")


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    _fail(f"{name} must be true or false, not {raw!r}.")
    return default


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        _fail(f"{name} must be a whole number, not {raw!r}.")
        return default
    if value < minimum:
        _fail(f"{name} must be at least {minimum}, not {value}.")
    return value


def envfloat(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        _fail(f"{name} must be a number, not {raw!r}.")
        return default
    if value <= 0:
        _fail(f"{name} must be greater than zero, not {value}.")
    return value


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


def envsecret(name: str) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/K8s secrets)."""
    path = envstr(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            _fail(f"{name}_FILE points at {path!r}, which cannot be read ({exc.strerror}).")
    return envstr(name)


def envdatabaseurl(name: str) -> str:
    """A PostgreSQL URL (postgresql://user:password@host:port/database?options), or empty."""
    url = envsecret(name)
    if url and not re.match(r"^postgres(ql)?://", url):
        _fail(
            f"{name} must be a PostgreSQL URL such as postgresql://user:password@host/aigateway;"
            " leave it unset to use the DuckDB file at DUCKDB_PATH."
        )
    return url


def envaddresses(name: str, default: str) -> list[str]:
    """Comma-separated IP addresses or networks (CIDR), or "*" for any."""
    values = envlist(name, default)
    for value in values:
        if value == "*":
            continue
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            _fail(f"{name} must list IP addresses or networks (or be *), not {value!r}.")
    return values


_RATE = re.compile(r"^(\d+)/(s|sec|second|m|min|minute|h|hour|d|day)$")


def envrate(name: str, default: str) -> str | None:
    """A rate limit such as "600/min" (per s, min, hour or day); "off" means no limit."""
    raw = envstr(name, default).lower().replace(" ", "")
    if raw in {"off", "none"}:
        return None
    if not _RATE.match(raw):
        _fail(f"{name} must look like 600/min (per s, min, hour or day) or be off, not {raw!r}.")
    return raw


DEBUG = envbool("DEBUG", False)

SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        _fail("SECRET_KEY is required when DEBUG is off; set it in the environment or in .env.")
    SECRET_KEY = "insecure-development-key-" + "x" * 40

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "core",  # the ground floor: API plumbing, data layer, errors, throttling, probes
    # contrib.auth and contenttypes are here only because simplejwt imports their model
    # classes; no table of theirs exists and no Django ORM database is configured.
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: no CDN
    "accounts",
    "generation",
    "adminops",
]

# Kept small and fully async: InlineMiddleware runs Django's security, session, CSRF,
# messages and clickjacking hooks without thread hops, and sets django-htmx's request.htmx
# on pages (see core/middleware.py).
MIDDLEWARE = [
    "core.middleware.request_log_middleware",
    "core.middleware.InlineMiddleware",
    "accounts.middleware.PageUserMiddleware",
]
CSRF_FAILURE_VIEW = "core.pages.csrf_failure"

ROOT_URLCONF = "aigateway.urls"
# The JSON APIs: bearer credentials only (no session, no CSRF), errors as JSON. /v1/ is the
# OpenAI-compatible API (generation/openai_api).
API_PATH_PREFIXES = ("/api/", "/v1/")
ASGI_APPLICATION = "aigateway.asgi.application"
WSGI_APPLICATION = "aigateway.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.navigation",
            ],
        },
    },
]

# Application data lives behind the repository layer, never in the Django ORM: the DuckDB
# file at DUCKDB_PATH (one process), or PostgreSQL when DATABASE_URL is set (many).
DATABASES: dict[str, dict[str, str]] = {}
DUCKDB_PATH = envstr("DUCKDB_PATH", str(BASE_DIR / "data" / "aigateway.duckdb"))
DATABASE_URL = envdatabaseurl("DATABASE_URL")
# Connections each server process keeps to PostgreSQL at most (all workers together must
# stay under the server's max_connections), and how long a request waits for a free one.
DATABASE_POOL_SIZE = envint("DATABASE_POOL_SIZE", 10, minimum=1)
DATABASE_POOL_TIMEOUT = envfloat("DATABASE_POOL_TIMEOUT", 10.0)
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(BASE_DIR / "media")))
# Where POST /api/admin/backup writes snapshots of the running server's database.
BACKUP_DIR = Path(envstr("BACKUP_DIR", str(BASE_DIR / "backups")))

# Browser sessions live in a signed cookie: no session table.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 7 * 24 * 3600, minimum=60)
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"
# BEHIND_PROXY is the one switch for a reverse proxy: `python -m aigateway.serve` then has
# uvicorn believe X-Forwarded-For/-Proto from FORWARDED_ALLOW_IPS only, rewriting the
# client address and scheme the app sees; without it uvicorn ignores those headers.
# Django must not read them itself (it would believe any client that sends them).
BEHIND_PROXY = envbool("BEHIND_PROXY", False)
FORWARDED_ALLOW_IPS = envaddresses("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
SECURE_PROXY_SSL_HEADER = None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": envint("PASSWORD_MIN_LENGTH", 8, minimum=6)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
REGISTRATION_OPEN = envbool("REGISTRATION_OPEN", True)
# Off: the login page shows no password form and password log-ins are refused, except for
# break-glass admins made by `manage.py createadmin` (single sign-on is then the way in).
PASSWORD_LOGIN = envbool("PASSWORD_LOGIN", True)

# Single sign-on with any OpenID Connect provider (accounts/oidc.py, README "SSO"). On when
# OIDC_ISSUER is set. The redirect URI is SITE_URL + /login/oidc/callback: built from
# settings, never from the request's Host header.
SITE_URL = envstr("SITE_URL").rstrip("/")
OIDC_ISSUER = envstr("OIDC_ISSUER").rstrip("/")
OIDC_CLIENT_ID = envstr("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = envsecret("OIDC_CLIENT_SECRET")
OIDC_SCOPES = envstr("OIDC_SCOPES", "openid email profile")
OIDC_BUTTON_LABEL = envstr("OIDC_BUTTON_LABEL", "Sign in with single sign-on")
# Members of any of these groups (read from OIDC_GROUPS_CLAIM) are admins while listed.
OIDC_ADMIN_GROUPS = envlist("OIDC_ADMIN_GROUPS", "")
OIDC_GROUPS_CLAIM = envstr("OIDC_GROUPS_CLAIM", "groups")
# Create accounts for first-time SSO users even when REGISTRATION_OPEN is off.
OIDC_AUTO_CREATE = envbool("OIDC_AUTO_CREATE", False)
OIDC_TIMEOUT = envfloat("OIDC_TIMEOUT", 10.0)
if OIDC_ISSUER:
    if not re.match(r"^https?://", OIDC_ISSUER):
        _fail(
            "OIDC_ISSUER must be the provider's https:// URL, e.g. https://id.example.org/realms/acme."
        )
    if not (OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
        _fail("OIDC_ISSUER is set, so OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are needed too.")
    if not re.match(r"^https?://[^/]+", SITE_URL):
        _fail(
            "OIDC_ISSUER is set, so SITE_URL (this server's public URL, e.g. https://ai.example.org) is needed too."
        )
    if "openid" not in OIDC_SCOPES.split():
        _fail("OIDC_SCOPES must contain openid.")

ACCESS_TOKEN_LIFETIME = timedelta(seconds=envint("ACCESS_TOKEN_TTL_SECONDS", 15 * 60, minimum=30))
REFRESH_TOKEN_LIFETIME = timedelta(
    seconds=envint("REFRESH_TOKEN_TTL_SECONDS", 7 * 24 * 3600, minimum=60)
)
# The JWT key may differ from SECRET_KEY so either can be rotated alone.
JWT_SIGNING_KEY = envsecret("JWT_SIGNING_KEY") or SECRET_KEY

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": ACCESS_TOKEN_LIFETIME,
    "REFRESH_TOKEN_LIFETIME": REFRESH_TOKEN_LIFETIME,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "USER_ID_CLAIM": "sub",
    "USER_ID_FIELD": "id",
    "TOKEN_TYPE_CLAIM": "typ",
    "JTI_CLAIM": "jti",
    "UPDATE_LAST_LOGIN": False,
    "ROTATE_REFRESH_TOKENS": False,
    "BLACKLIST_AFTER_ROTATION": False,
    "LEEWAY": 0,
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsSignedIn"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JsonBodyParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.GatewayContentNegotiation",
    "EXCEPTION_HANDLER": "core.api.api_exception_handler",
    "UNAUTHENTICATED_USER": "accounts.identity.Anonymous",
    "UNAUTHENTICATED_TOKEN": None,
    "UNICODE_JSON": True,
    "COMPACT_JSON": True,
    "DEFAULT_SCHEMA_CLASS": "core.openapi.GatewaySchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttling.UserRateThrottle",
        "core.throttling.AnonRateThrottle",
        "core.throttling.ScopedIpRateThrottle",
    ],
}

# Sliding-window limits (aigateway/throttling.py): per user, per IP without credentials,
# and per IP on register/login/refresh. Counters live in Django's cache: in-process by
# default (exact for the one server process); REDIS_URL moves them to Redis.
RATE_LIMITS = {
    "user": envrate("RATE_LIMIT_USER", "600/min"),
    "anon": envrate("RATE_LIMIT_ANON", "120/min"),
    "auth": envrate("RATE_LIMIT_AUTH", "20/min"),
    # Failed authentications (bad, expired or revoked tokens and keys) per client IP.
    "auth_failures": envrate("RATE_LIMIT_AUTH_FAILURES", "30/min"),
}
REDIS_URL = envstr("REDIS_URL")
# Every key this deployment writes to Redis starts with it (several deployments, or test
# runs, may share one Redis).
REDIS_KEY_PREFIX = envstr("REDIS_KEY_PREFIX", "aigateway:")
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX.rstrip(":"),
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "aigateway",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    )
}

SPECTACULAR_SETTINGS = {
    "TITLE": "aigateway API",
    "DESCRIPTION": (
        "Self-hosted AI gateway in front of OpenRouter. Every error has the shape "
        '`{"error": {"code", "message", "fields"}}`. Authenticate with '
        "`Authorization: Bearer <access token or API key>`. The OpenAI-compatible API "
        "under `/v1/` (tag `openai`) speaks OpenAI's format instead, errors included: "
        '`{"error": {"message", "type", "param", "code"}}`.'
    ),
    "TAGS": [
        {
            "name": "openai",
            "description": "OpenAI-compatible API: point the official SDKs and the tools "
            "built on them at `<site>/v1` with a personal API key.",
        },
    ],
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "UserRoleEnum": ["user", "admin"],
        "MessageRoleEnum": ["system", "user", "assistant"],
        "AssistantRoleEnum": ["assistant"],
        "ModelKindEnum": ["text", "image", "video"],
        "ReasoningEffortEnum": ["minimal", "low", "medium", "high"],
        "ContentPartTypeEnum": ["text", "image_url"],
        "FunctionTypeEnum": ["function"],
        "ResponseFormatTypeEnum": ["text", "json_object", "json_schema"],
        "EmbeddingObjectEnum": ["embedding"],
        "ListObjectEnum": ["list"],
        "GenerationKindEnum": ["text", "chat", "image", "video", "summarize", "shorten"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi.add_plain_views",
    ],
}

# Bodies larger than this are refused with 413 before any parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("MAX_JSON_BODY_BYTES", 1024 * 1024, minimum=1024)
# Paths that take file uploads get a larger limit (checked by the ASGI guard).
UPLOAD_PATH_PREFIXES = ("/api/generate/video/from-image", "/generate/video")
MAX_UPLOAD_BYTES = envint("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024)
MAX_FRAME_IMAGE_BYTES = envint("MAX_FRAME_IMAGE_BYTES", 10 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_FRAME_IMAGE_BYTES


# The server's connection limits, read by `python -m aigateway.serve` (core/server.py).
# No timeout here limits how long a response may take: SSE streams and video downloads run
# for minutes. A connection must finish each request's headers within the header timeout
# of opening or of its previous response; idle keep-alive connections close after the
# keep-alive timeout; past the concurrency limit new connections get 503 and are closed.
SERVER_LIMIT_CONCURRENCY = envint("SERVER_LIMIT_CONCURRENCY", 1000, minimum=2)
SERVER_KEEP_ALIVE_TIMEOUT = envint("SERVER_KEEP_ALIVE_TIMEOUT", 5, minimum=1)
SERVER_HEADER_TIMEOUT = envint("SERVER_HEADER_TIMEOUT", 10, minimum=1)

OPENROUTER_API_KEY = envsecret("OPENROUTER_API_KEY")
OPENROUTER_BASE_URL = envstr("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1").rstrip("/")
OPENROUTER_APP_URL = envstr("OPENROUTER_APP_URL", "")
OPENROUTER_APP_TITLE = envstr("OPENROUTER_APP_TITLE", "aigateway")
OPENROUTER_CONNECT_TIMEOUT = envfloat("OPENROUTER_CONNECT_TIMEOUT", 5.0)
OPENROUTER_READ_TIMEOUT = envfloat("OPENROUTER_READ_TIMEOUT", 120.0)
OPENROUTER_STREAM_READ_TIMEOUT = envfloat("OPENROUTER_STREAM_READ_TIMEOUT", 300.0)
OPENROUTER_MAX_RETRIES = envint("OPENROUTER_MAX_RETRIES", 2)
# Completion tokens a call under a budget is reserved for, and capped at upstream, when the
# client sets no max_tokens (decision 41).
BUDGET_DEFAULT_MAX_TOKENS = envint("BUDGET_DEFAULT_MAX_TOKENS", 4096, minimum=1)
# On PostgreSQL, how long a call's budget reservation outlives a worker that died with it
# (decision 49): longer than any call runs, stream and late costing included.
BUDGET_RESERVATION_SECONDS = envint("BUDGET_RESERVATION_SECONDS", 3600, minimum=60)
# Keys the per-user pseudonym sent upstream as `user` (decision 33); empty: derived from
# SECRET_KEY. Changing it gives every user a new pseudonym at OpenRouter.
UPSTREAM_USER_KEY = envsecret("UPSTREAM_USER_KEY")

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOG_LEVEL = envstr("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # The process id tells the worker processes apart (WEB_CONCURRENCY).
    "formatters": {
        "plain": {"format": "%(asctime)s [%(process)d] %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "stream": sys.stderr, "formatter": "plain"}
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    # httpx (and httpx2, under Authlib's SSO client) log every outbound request at INFO;
    # our own request line says enough.
    "loggers": {
        "django.request": {"level": "ERROR"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
