"""A shop with UUID-keyed items, configured for Lookalike from docs/install.md alone."""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "uuidshop-test-only")
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "lookalike",
    "lookalike.jobs",
    "visualsearch",
    "recommendations",
    "catalog",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "uuidshop.urls"
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

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("UUIDSHOP_MEDIA_ROOT", BASE_DIR / "media"))

# -- Lookalike (docs/install.md) ---------------------------------------------------------
LOOKALIKE_PRODUCT_MODEL = "catalog.Item"
LOOKALIKE_CATALOGUE_ADAPTER = "catalog.adapters.ItemAdapter"
LOOKALIKE_BASE_TEMPLATE = "base.html"
LOOKALIKE_CURRENCY = "USD"
VISUALSEARCH_API_PRODUCT_VIEWSET = "recommendations.api.views.PersonalisedProductViewSet"
VISUALSEARCH_ARTIFACT_DIR = Path(os.environ.get("UUIDSHOP_VAR", BASE_DIR / "var")) / "models"
RECOMMENDATIONS_ARTIFACT_DIR = (
    Path(os.environ.get("UUIDSHOP_VAR", BASE_DIR / "var")) / "recommender"
)
LOOKALIKE_JOBS_BACKEND = "inline"
# A cache every process shares, for the photo-search throttle (docs/install.md).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "lookalike_cache",
    }
}
MIDDLEWARE += ["lookalike.middleware.DatabaseUnavailableMiddleware"]
REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"image_search": "30/minute"}}
