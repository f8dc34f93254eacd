"""Settings shared by every environment; values come from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from celery.schedules import crontab

from advisor.db import database_settings

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "advisor",
    "accounts",
    "portfolios",
    "compliance",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "guardian",
    "django_celery_beat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "advisor.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "advisor.middleware.FirmMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "advisor.urls"
WSGI_APPLICATION = "advisor.wsgi.application"
ASGI_APPLICATION = "advisor.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "advisor" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "advisor.context_processors.firm",
            ],
        },
    },
]

DATABASES = database_settings()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
ANONYMOUS_USER_NAME = None  # django-guardian: no anonymous user row

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "advisor" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it to send X-CSRFToken

EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "no-reply@advisor.local")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "advisor.api.pagination.DefaultPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_THROTTLE_ANON", "60/minute"),
        "user": os.environ.get("API_THROTTLE_USER", "2000/minute"),
        "auth": os.environ.get("API_THROTTLE_AUTH", "20/minute"),
    },
    "EXCEPTION_HANDLER": "advisor.api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Advisor platform API",
    "DESCRIPTION": "Multi-tenant robo-advisor platform. Send `X-Firm: <slug>` when your user "
    "belongs to more than one firm.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" with its own choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "PortfolioStatusEnum": "portfolios.models.PortfolioStatus",
        "QuestionnaireStatusEnum": "accounts.models.QuestionnaireStatus",
        "ResponseStatusEnum": "accounts.models.ResponseStatus",
        "ProfileStatusEnum": "accounts.models.ProfileStatus",
        "LedgerKindEnum": "portfolios.models_holdings.LedgerKind",
        "CashFlowKindEnum": "portfolios.models_holdings.CashFlowKind",
        "CashFlowStatusEnum": "portfolios.models_holdings.CashFlowStatus",
        "RunStatusEnum": "portfolios.models_rebalance.RunStatus",
        "RunPortfolioStatusEnum": "portfolios.models_rebalance.RunPortfolioStatus",
        "OrderStatusEnum": "portfolios.models_rebalance.OrderStatus",
    },
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("CACHE_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["CACHE_URL"],
        }
    }

# Celery: with no broker configured, tasks run eagerly in-process.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Rebalance chunks write behind a thread when the host has a core beyond its workers'
# (unset: decided per worker, portfolios.bulk.spare_cores); "1" or "0" forces it.
REBALANCE_WRITE_BEHIND = {"1": True, "0": False}.get(os.environ.get("REBALANCE_WRITE_BEHIND", ""))
# The daily drift scan reads this many chunks at once, each on its own connection: the
# database reads two while Python works on a third.
REBALANCE_SCAN_THREADS = int(os.environ.get("REBALANCE_SCAN_THREADS", "2"))
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The DatabaseScheduler installs these entries in its tables when beat starts.
CELERY_BEAT_SCHEDULE = {
    "rebalance-daily": {
        # After the US close: per firm, calendar runs then the drift scan.
        "task": "portfolios.rebalance_scheduled_all_firms",
        "schedule": crontab(hour=22, minute=15),
    },
    "notifications-send-due": {
        # Retries after their backoff, and deliveries whose sender died mid-send.
        "task": "accounts.notifications_send_due_all_firms",
        "schedule": crontab(minute="*"),
    },
    "notifications-daily": {
        # Profiles expiring soon, then each user's digest of the day.
        "task": "accounts.notifications_daily_all_firms",
        "schedule": crontab(hour=23, minute=30),
    },
    "audit-chain-nightly": {
        # Every firm's audit hash chain re-verified; a break emails its compliance officers.
        "task": "compliance.audit_chain_verify_all_firms",
        "schedule": crontab(hour=2, minute=30),
    },
}

# Notifications (accounts/notifications/): a firm's failing email template raises when
# strict (tests) and falls back to the default, recorded, otherwise. Webhook URLs must be
# https; http to localhost only when allowed (tests). SITE_URL prefixes links in email.
NOTIFICATIONS_STRICT_TEMPLATES = env_bool("NOTIFICATIONS_STRICT_TEMPLATES", False)
NOTIFICATIONS_WEBHOOK_ALLOW_LOCALHOST = env_bool("NOTIFICATIONS_WEBHOOK_ALLOW_LOCALHOST", False)
SITE_URL = os.environ.get("SITE_URL", "http://localhost:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"pgserver": {"level": "WARNING"}},
}

# Market data (portfolios/services_market.py): a new price whose move from the previous
# close exceeds MARKET_OUTLIER_SIGMAS standard deviations of the asset's last
# MARKET_OUTLIER_WINDOW accepted log returns (and MARKET_OUTLIER_MIN_MOVE in size) is
# held for review instead of being used.
MARKET_OUTLIER_SIGMAS = float(os.environ.get("MARKET_OUTLIER_SIGMAS", "8"))
MARKET_OUTLIER_WINDOW = int(os.environ.get("MARKET_OUTLIER_WINDOW", "60"))
MARKET_OUTLIER_MIN_PERIODS = int(os.environ.get("MARKET_OUTLIER_MIN_PERIODS", "20"))
MARKET_OUTLIER_MIN_MOVE = float(os.environ.get("MARKET_OUTLIER_MIN_MOVE", "0.02"))
