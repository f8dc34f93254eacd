"""The test suite."""

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = ""
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {
        "anon": "100000/minute",
        "user": "100000/minute",
        "auth": "100000/minute",
    },
}
# The demo book's portfolios per firm (portfolios/demo_book.py); the env var
# DEMO_PORTFOLIOS wins over it. Tests keep the demo small.
DEMO_PORTFOLIOS = 12
# A firm's broken email template fails loudly in tests (the run-time fallback is tested
# by switching this off); webhook tests post to a local HTTP server.
NOTIFICATIONS_STRICT_TEMPLATES = True
NOTIFICATIONS_WEBHOOK_ALLOW_LOCALHOST = True
