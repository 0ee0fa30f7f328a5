"""Django settings of the Lookalike reference shop.

Everything a deployment changes comes from the environment: ``DATABASE_URL`` (an
external PostgreSQL with pgvector >= 0.8; without it the embedded server in
``var/pgdata`` is used), ``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG``, ``DJANGO_ALLOWED_HOSTS``,
``DJANGO_HTTPS``, ``LOOKALIKE_JOBS_BACKEND``, ``CELERY_BROKER_URL``, ``REDIS_URL`` (the
cache), ``DJANGO_NUM_PROXIES`` (trusted reverse proxies), ``DJANGO_CONN_MAX_AGE`` (persistent
database connections), ``DATABASE_REPLICA_URLS`` (read replicas, see ``lookalike.routing``)
and ``DJANGO_LOG_FORMAT`` (``json`` for JSON lines). The plugin apps' own
settings (``LOOKALIKE_*``, ``VISUALSEARCH_*``, ``RECOMMENDATIONS_*``) are documented in their
``conf.py``.

Safe by default: ``DEBUG`` is off unless ``DJANGO_DEBUG=1`` (``make demo`` sets it), and
there is no public secret key. Against an external database (``DATABASE_URL``) without
``DEBUG``, ``DJANGO_SECRET_KEY`` is required; the embedded database of a development
machine uses a random key made once and kept in ``var/secret_key``.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.keys import stored_secret_key
from config.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LOOKALIKE_VAR_DIR", BASE_DIR / "var"))

DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"


def _secret_key():
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    if os.environ.get("DATABASE_URL") and not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. A shop served from an external database needs "
            "its own secret key: set DJANGO_SECRET_KEY to a long random value (see the "
            "README's production environment)."
        )
    return stored_secret_key(VAR_DIR)


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

# Behind HTTPS (DJANGO_HTTPS=1): secure cookies, redirects and HSTS; `check --deploy` is
# then clean. DJANGO_SECURE_PROXY_SSL_HEADER=1 trusts a proxy's X-Forwarded-Proto.
HTTPS = os.environ.get("DJANGO_HTTPS", "0") == "1"
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", 31536000 if HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
# The header's "preload" flag only consents to the browsers' preload list; submitting the
# domain stays the owner's act. DJANGO_HSTS_PRELOAD=0 leaves it out.
SECURE_HSTS_PRELOAD = HTTPS and os.environ.get("DJANGO_HSTS_PRELOAD", "1") == "1"
if os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "0") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The error page (DEBUG) and error reports hide connection strings as well as secrets.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.ReporterFilter"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.humanize",
    "django_prometheus",
    "health_check",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Before the plugins, so that its templates override theirs (lookalike/price.html).
    "shop",
    "lookalike",
    "lookalike.jobs",
    "visualsearch",
    "recommendations",
]

MIDDLEWARE = [
    # Prometheus' request counters and latency histograms wrap everything else.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Each request's id (a proxy's X-Request-ID, or a new one) in its logs and response.
    "config.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from the WSGI process (compressed, cached for ever by their
    # hashed names), before sessions and the rest have a chance to spend time on them.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A request that loses the database answers 503 and the next one reconnects.
    "lookalike.middleware.DatabaseUnavailableMiddleware",
    # Writes, the admin and whatever follows a write in a request read the primary.
    "lookalike.routing.PrimaryDatabaseMiddleware",
    "lookalike.metrics.SearchMetricsMiddleware",
    "config.prometheus.PrometheusAfterMiddleware",
]

if DEBUG:  # Django's debug page fails on a request with too many parameters
    MIDDLEWARE.insert(0, "config.debug.TooManyFieldsMiddleware")

ROOT_URLCONF = "config.urls"

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
                "shop.context_processors.shop",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"


def _conn_max_age(default):
    """Seconds a thread keeps its database connection between requests (``None``: for
    ever). A server with long-lived threads (gunicorn's gthread workers, ``make serve``
    sets 300) saves a connection set-up per request; Django's development server starts a
    thread per request, so it gains nothing from it."""
    value = os.environ.get("DJANGO_CONN_MAX_AGE", "")
    if not value:
        return default
    return None if value.lower() == "none" else int(value)


def _database():
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        # Health checks: a connection broken by a database restart is replaced before the
        # next request uses it, instead of failing it.
        return dj_database_url.parse(url, conn_max_age=_conn_max_age(60), conn_health_checks=True)
    # Embedded PostgreSQL, started on the first connection (see config/embedded.py).
    # LOOKALIKE_DB_NAME lets a notebook kernel started by the tests use the test database.
    name = os.environ.get("LOOKALIKE_DB_NAME", "lookalike")
    return {
        "ENGINE": "config.dbbackend",
        "NAME": name,
        "USER": "postgres",
        "CONN_MAX_AGE": _conn_max_age(0),
        "CONN_HEALTH_CHECKS": True,
    }


def _replicas():
    """Read replicas from ``DATABASE_REPLICA_URLS`` (comma-separated ``postgres://`` URLs),
    as the aliases ``replica_1``, ``replica_2``... ``lookalike.routing.ReplicaRouter`` sends
    search and recommendation reads to them and falls back to the primary while one is
    down. A short connect timeout, so that a replica that vanished is noticed in a second,
    not in the operating system's two minutes."""
    import dj_database_url

    urls = [u.strip() for u in os.environ.get("DATABASE_REPLICA_URLS", "").split(",")]
    replicas = {}
    for i, url in enumerate([u for u in urls if u], start=1):
        config = dj_database_url.parse(url, conn_max_age=_conn_max_age(60), conn_health_checks=True)
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
        # Tests never create a database on a replica: it follows the primary's.
        config["TEST"] = {"MIRROR": "default"}
        replicas[f"replica_{i}"] = config
    return replicas


DATABASES = {"default": _database(), **_replicas()}
DATABASE_ROUTERS = ["lookalike.routing.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "shop:home"
LOGOUT_REDIRECT_URL = "shop:home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Served by WhiteNoise (MIDDLEWARE) from STATIC_ROOT after `collectstatic`. With
# DJANGO_STATIC_MANIFEST=1 (`make serve` and production) files get content-hashed names and
# gzip copies, and are cached by browsers for ever; without it (the development
# server, the tests) no manifest is needed and files are found in the apps' folders.
STATIC_MANIFEST = os.environ.get("DJANGO_STATIC_MANIFEST", "0") == "1"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("LOOKALIKE_MEDIA_ROOT", VAR_DIR / "media"))
# The shop serves the product photos itself unless a web server or a CDN in front of it
# does (DJANGO_SERVE_MEDIA=0): gunicorn's threads then serve pages only.
SERVE_MEDIA = os.environ.get("DJANGO_SERVE_MEDIA", "1") != "0"
# On several machines, folders every machine reads (README, Several machines): a model
# trained on a worker is served by the web machines. Each defaults to a folder of var/.
if os.environ.get("VISUALSEARCH_ARTIFACT_DIR"):
    VISUALSEARCH_ARTIFACT_DIR = Path(os.environ["VISUALSEARCH_ARTIFACT_DIR"])
if os.environ.get("RECOMMENDATIONS_ARTIFACT_DIR"):
    RECOMMENDATIONS_ARTIFACT_DIR = Path(os.environ["RECOMMENDATIONS_ARTIFACT_DIR"])

# Search photos do not go through these: their own upload handler (visualsearch.
# upload_handlers) reads them in memory, never past VISUALSEARCH_MAX_UPLOAD_BYTES (10 MB),
# and refuses a body announced larger unread (HTTP 400). Django's defaults, 2.5 MB, hold the
# other forms' fields and uploads (the admin's product photos; larger ones go to temporary
# files): raising them would only let other requests hold more memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# The plugin apps reach the shop's products only through the catalogue adapter; the
# default one reads the flat fields of this model (LOOKALIKE_PRODUCT_FIELDS' defaults).
LOOKALIKE_PRODUCT_MODEL = "shop.Product"
LOOKALIKE_BASE_TEMPLATE = "shop/base.html"
LOOKALIKE_CARD_TEMPLATE = "shop/_product_card.html"
LOOKALIKE_WIDGET_STYLESHEET = None  # shop.css styles the strips
# /api/products/{id}/similar/ also takes ?profile= to blend in the recommender.
VISUALSEARCH_API_PRODUCT_VIEWSET = "recommendations.api.views.PersonalisedProductViewSet"

# Background jobs (reindex, training): "worker" runs them in `manage.py run_jobs`
# processes that poll the database; "celery" sends them to Celery workers;
# "inline" runs them in the calling process after commit (tests).
LOOKALIKE_JOBS_BACKEND = os.environ.get("LOOKALIKE_JOBS_BACKEND", "worker")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# A request that queues a job must not hang on a broker that is down, or up but silent (a
# paused Redis: the socket timeouts): the job is marked failed (resumable) instead.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# Redis hands a message that was taken but never acknowledged (its worker died) to another
# worker after visibility_timeout seconds; RabbitMQ does so as soon as the connection drops.
# Longer than any one task (a reindex chunk takes seconds; the coordinator of a reindex is
# safe to redeliver: it only claims a queued job). A pool process killed mid-task is
# requeued at once by its worker (task_reject_on_worker_lost), whatever the broker.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "600")),
    "socket_timeout": 5,
    "socket_connect_timeout": 2,
}
# A task is acknowledged when it ends, not when it starts: a worker that dies mid-task
# leaves it to another one. Every task here is idempotent (a chunk skips the products
# already embedded; a job is claimed once), so running one again is safe.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per pool process: a long chunk never holds others hostage.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Two deployments on one broker must not take each other's jobs: a queue name of their own.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "lookalike")
# No result backend: job state lives in the database (lookalike.jobs.models.Job).
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# Celery beat (one per deployment; `make serve` runs it inside its worker): jobs whose
# worker died, and queued jobs nobody took, are marked failed every minute, so a key is never
# blocked by a job nobody will finish, even when no enqueue or admin page comes to reap it.
CELERY_BEAT_SCHEDULE = {
    "reap-jobs": {"task": "lookalike.reap_jobs", "schedule": 60.0},
}


def _caches():
    """One cache shared by every process of the shop: photo-search throttles count in it
    (VISUALSEARCH_THROTTLE_CACHE), and a per-process local-memory cache would give each
    worker its own allowance. Redis when REDIS_URL is set; else a table in the shop's
    database, which needs no other server (`manage.py createcachetable` creates it: the
    Makefile runs it after `migrate`, and Django's test runner creates it for the tests)."""
    url = os.environ.get("REDIS_URL")
    if url:
        # A Redis outage must not fail every photo search: cache errors are ignored (the
        # throttle lets requests through until Redis is back). A Redis that stops
        # answering costs a call its socket timeout (REDIS_SOCKET_TIMEOUT seconds), after
        # which the process reads nothing from it for a few seconds (config/redis_cache.py).
        timeout = float(os.environ.get("REDIS_SOCKET_TIMEOUT", "0.5"))
        return {
            "default": {
                "BACKEND": "config.redis_cache.FailFastRedisCache",
                "LOCATION": url,
                # Two shops on one Redis (a shared server, two databases' worth of keys):
                # a prefix of their own keeps their keys apart.
                "KEY_PREFIX": os.environ.get("DJANGO_CACHE_KEY_PREFIX", ""),
                "OPTIONS": {
                    "IGNORE_EXCEPTIONS": True,
                    "SOCKET_CONNECT_TIMEOUT": timeout,
                    "SOCKET_TIMEOUT": timeout,
                },
            }
        }
    # Django culls a database cache to a third when it holds MAX_ENTRIES (300 by default),
    # taking throttle and per-address counts with it: room for a busy hour's counts.
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "lookalike_cache",
            "OPTIONS": {"MAX_ENTRIES": 50_000},
        }
    }


CACHES = _caches()
# Not a traceback per ignored call: FailFastRedisCache logs one warning when Redis fails.
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = False
VISUALSEARCH_THROTTLE_CACHE = "default"

# Sessions (carts, logins, the anonymous shopper's key) are read on nearly every request and
# written far less often. With Redis, "cached_db" reads them from the cache and writes them
# through to the database: reads cost no database query, and a cart survives a Redis restart
# or an eviction (Redis is run as a cache, `maxmemory-policy volatile-lru`) because the
# database keeps the last word. Pure cache sessions would lose every cart with Redis. Without
# Redis the cache is a database table, so "cached_db" would only add a query: plain "db".
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if os.environ.get("REDIS_URL")
    else "django.contrib.sessions.backends.db"
)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Photo searches per client, through the page and the API together (DRF's rate syntax;
    # bench/load.py raises it: its clients search photos faster than a shopper would).
    "DEFAULT_THROTTLE_RATES": {
        "image_search": os.environ.get("LOOKALIKE_PHOTO_SEARCH_RATE", "30/minute")
    },
    # Reverse proxies in front of the shop that append the client's address to
    # X-Forwarded-For; 0 (the default) ignores the header, which clients can forge.
    "NUM_PROXIES": int(os.environ.get("DJANGO_NUM_PROXIES", "0")),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lookalike API",
    "DESCRIPTION": "Visual search and personalised recommendations for the shop's catalogue.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ serves Swagger UI's files from the shop's static files (a pinned copy),
    # never from a CDN: it works offline and runs no code the shop did not install.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Prometheus metrics (/metrics, config/urls.py): several gunicorn workers write theirs into
# PROMETHEUS_MULTIPROC_DIR (`make serve` sets it) and the view adds them up.
PROMETHEUS_EXPORT_MIGRATIONS = False
# Values read from the database at each scrape: job progress, vectors per encoder version,
# the recommender version active and served.
# A bearer token that scrapers must send, when the environment sets one (see README,
# Operations); without it, restrict /metrics to the monitoring network in the proxy.
LOOKALIKE_METRICS_TOKEN = os.environ.get("LOOKALIKE_METRICS_TOKEN") or None
LOOKALIKE_METRICS_COLLECTORS = [
    "lookalike.jobs.metrics.JobsCollector",
    "visualsearch.metrics.VisualIndexCollector",
    "recommendations.metrics.RecommenderCollector",
]


LOGGING = logging_config()  # config/logs.py: text or JSON lines, with request ids
