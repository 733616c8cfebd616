"""Settings of the sentiment demo. Everything that differs per machine comes from the env.

DEMO_DATABASE_URL   PostgreSQL for Django *and* celeriac (default: the local server,
                    database celeriac_demo) — one database, so a project row and its
                    tasks commit in one transaction.
DEMO_VAR            where uploads and e-mails go (default demo/var)
DEMO_TIME_LIMIT     seconds each analysis tool may run (default 600)
"""

from __future__ import annotations

import os
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from celeriac.contrib.django import database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("DEMO_VAR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DEMO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "celeriac.contrib.django",
    "analysis",
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
ROOT_URLCONF = "demo_site.urls"
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
            ]
        },
    }
]
WSGI_APPLICATION = "demo_site.wsgi.application"

_db = conninfo_to_dict(
    os.environ.get("DEMO_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/celeriac_demo")
)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.get("dbname", "celeriac_demo"),
        "USER": _db.get("user", ""),
        "PASSWORD": _db.get("password", ""),
        "HOST": _db.get("host", ""),
        "PORT": _db.get("port", ""),
        "TEST": {"NAME": os.environ.get("DEMO_TEST_DATABASE")},
    }
}

# celeriac: broker and results in Django's own database (transactional publishing)
CELERY_BROKER_URL = database_url(DATABASES["default"])
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXTENDED = True
CELERY_BEAT_SCHEDULE = {
    "check-projects": {"task": "analysis.check_projects", "schedule": 30.0},
}

# the analysis
ANALYSIS_MAX_UPLOAD_BYTES = int(os.environ.get("DEMO_MAX_UPLOAD_BYTES", 5_000_000))
ANALYSIS_MAX_LINES = 20_000
ANALYSIS_MODEL_PARTS = int(os.environ.get("DEMO_MODEL_PARTS", 8))  # chord members for the model
ANALYSIS_TIME_LIMIT = float(os.environ.get("DEMO_TIME_LIMIT", 600))
ANALYSIS_MAX_ATTEMPTS = 3  # the checker retries a failed project at most twice
ANALYSIS_RETRY_AFTER = float(os.environ.get("DEMO_RETRY_AFTER", 60))

# notification e-mails are written to files (no mail server needed)
EMAIL_BACKEND = os.environ.get(
    "DEMO_EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = VAR / "mail"
DEFAULT_FROM_EMAIL = "celeriac-demo@localhost"
DEMO_NOTIFY_EMAIL = "you@localhost"
DEMO_BASE_URL = os.environ.get("DEMO_BASE_URL", "http://127.0.0.1:8000")

MEDIA_ROOT = VAR / "media"
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
# no LOGGING here: the worker's log set-up (celeriac -l info) stays in charge
