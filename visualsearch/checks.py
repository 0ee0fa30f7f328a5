"""System checks: the app needs django.contrib.postgres, Django REST framework and a database
with pgvector, tables whose product keys fit the product model, its pages' URLs in the
URLconf, a shared throttle cache, a registered encoder, an API viewset that imports, a
category prior that is a weight, an absolute artefact directory in deployment, and
``VISUALSEARCH_*`` settings it knows."""

from pathlib import Path

from django.apps import apps
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.utils import DatabaseError

from lookalike.checks import unknown_settings

from .conf import app_settings


@register()
def check_contrib_postgres(app_configs, **kwargs):
    """The apps visualsearch needs. Django REST framework is imported whether or not it is
    installed, so without it the API answers JSON and only the browsable pages fail, each
    a 500 (``TemplateDoesNotExist: rest_framework/api.html``): a warning, since a host
    whose renderers are JSON only serves none."""
    errors = [
        Error(f"visualsearch needs {app!r} in INSTALLED_APPS.", id=f"visualsearch.{code}")
        for app, code in (
            ("django.contrib.postgres", "E001"),
            ("lookalike", "E006"),
            ("lookalike.jobs", "E007"),
        )
        if not apps.is_installed(app)
    ]
    if not apps.is_installed("rest_framework"):
        errors.append(
            Warning(
                "visualsearch's API is served by Django REST framework: 'rest_framework' is "
                "not in INSTALLED_APPS.",
                hint="Add it: the API's browsable pages render its templates "
                "(rest_framework/api.html), and without it each one answers a 500.",
                id="visualsearch.W004",
            )
        )
    return errors


@register(Tags.database)
def check_pgvector(app_configs, databases=None, **kwargs):
    """Fail clearly when the database cannot provide the ``vector`` extension.

    Database checks run with ``manage.py check --database default`` and before
    ``migrate``, so a server without pgvector is reported before a migration fails.
    """
    errors = []
    for alias in databases or []:
        conn = connections[alias]
        if conn.vendor != "postgresql":
            errors.append(
                Error(
                    f"Database '{alias}' is {conn.vendor}; "
                    "visualsearch needs PostgreSQL with pgvector.",
                    id="visualsearch.E002",
                )
            )
            continue
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT default_version, installed_version FROM pg_available_extensions "
                    "WHERE name = 'vector'"
                )
                row = cursor.fetchone()
        except DatabaseError as exc:
            errors.append(
                Error(f"Could not query database '{alias}': {exc}", id="visualsearch.E003")
            )
            continue
        if row is None:
            errors.append(
                Error(
                    f"The PostgreSQL server of database '{alias}' has no pgvector extension.",
                    hint="Install pgvector 0.8 or newer on that server. The visualsearch "
                    "migrations then create the extension, which needs a superuser (or one "
                    "runs `CREATE EXTENSION vector;` in that database first).",
                    id="visualsearch.E004",
                )
            )
        elif _version(row[0]) < (0, 8):
            errors.append(
                Error(
                    f"pgvector {row[0]} on database '{alias}' is too old; 0.8 or newer is needed "
                    "for iterative index scans.",
                    id="visualsearch.E005",
                )
            )
    return errors


def _version(text):
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


#: The type of a table's column, and whether it is the type ``%s`` names; no row when the
#: table (or the column) does not exist yet.
_COLUMN_TYPE = """
    SELECT format_type(atttypid, atttypmod), atttypid = %s::regtype
    FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped
"""


def product_key_mismatches(app_label, check_id, databases):
    """Errors for the tables of ``app_label`` whose product key column is not of the type the
    product model's primary key needs.

    The plugins' foreign keys follow ``LOOKALIKE_PRODUCT_MODEL``, read when their models
    are imported, but their migrations made the columns once: after a change of the setting
    to a model with another kind of key (UUID for integers), ``migrate`` has nothing to
    apply and every query joining products fails (``operator does not exist: bigint =
    uuid``). Tables not created yet, before the first ``migrate``, pass.
    """
    from lookalike.catalogue import product_model

    try:
        product = product_model()._meta.concrete_model
    except ImproperlyConfigured:
        return []  # lookalike.E002, E003
    fields = [
        field
        for model in apps.get_app_config(app_label).get_models()
        for field in model._meta.local_concrete_fields
        if field.many_to_one and field.related_model._meta.concrete_model is product
    ]
    errors = []
    for alias in databases or []:
        conn = connections[alias]
        if conn.vendor != "postgresql":
            continue  # visualsearch.E002
        for field in fields:
            if not router.allow_migrate_model(alias, field.model):
                continue
            table, expected = field.model._meta.db_table, field.db_type(conn)
            try:
                with conn.cursor() as cursor:
                    cursor.execute(
                        _COLUMN_TYPE, [expected, conn.ops.quote_name(table), field.column]
                    )
                    row = cursor.fetchone()
            except DatabaseError:
                break  # visualsearch.E003
            if row is not None and not row[1]:
                errors.append(_product_key_error(app_label, check_id, alias, field, row[0]))
    return errors


def _product_key_error(app_label, check_id, alias, field, found):
    return Error(
        f"The table {field.model._meta.db_table!r} of database {alias!r} keeps products in "
        f"{field.column!r} as {found}, but the primary key of LOOKALIKE_PRODUCT_MODEL "
        f"{field.related_model._meta.label!r} needs {field.db_type(connections[alias])}: "
        f"the {app_label} tables were created for another product model.",
        hint=f"Migrate {app_label} back to zero and migrate again (`manage.py migrate "
        f"{app_label} zero --skip-checks`, then `manage.py migrate`), which drops its tables "
        "and their rows, or set LOOKALIKE_PRODUCT_MODEL back to the model they were created "
        "for.",
        id=check_id,
    )


@register(Tags.database)
def check_product_keys(app_configs, databases=None, **kwargs):
    """Vectors and index failures keyed for another product model than the setting's: the
    API's similar products and ``reindex`` would fail on them."""
    return product_key_mismatches("visualsearch", "visualsearch.E014", databases)


#: Cache backends whose counts live in one process (or nowhere).
_PRIVATE_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register(Tags.urls)
def check_urls(app_configs, **kwargs):
    """The pages' URL names resolve: the plugin pages, the admin's "Find similar to
    selected" and Oscar's product page (``lookalike.contrib.oscar``) link to them with
    ``{% url 'visualsearch:...' %}``, and each would be a 500 (``NoReverseMatch``) without
    the include. A URLconf that does not import is Django's own error to report."""
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    if not getattr(settings, "ROOT_URLCONF", None):
        return []
    try:
        reverse("visualsearch:search_by_photo")
        reverse("visualsearch:similar", args=["1"])
    except NoReverseMatch:
        return [
            Error(
                "The URL namespace 'visualsearch' is not registered in ROOT_URLCONF "
                f"{settings.ROOT_URLCONF!r}: every page that links to the plugin's "
                'pages ("Find similar", "Search by photo") fails with NoReverseMatch, a 500.',
                hint='Add path("visual/", include("visualsearch.urls")) to its urlpatterns, '
                "before any catch-all route (such as Oscar's).",
                id="visualsearch.E015",
            )
        ]
    except Exception:  # a URLconf that does not import, a broken route: Django's to report
        return []
    return []


@register()
def check_throttle_cache(app_configs, **kwargs):
    """Photo-search throttles must count in a cache every process shares: in a per-process
    one, each server process (and each restart) gives a client a fresh allowance."""
    from django.conf import settings

    name = app_settings.THROTTLE_CACHE
    backend = settings.CACHES.get(name, {}).get("BACKEND", "")
    if name not in settings.CACHES:
        return [
            Error(
                f"VISUALSEARCH_THROTTLE_CACHE names the cache {name!r}, which CACHES lacks.",
                id="visualsearch.E008",
            )
        ]
    if backend in _PRIVATE_CACHES:
        return [
            Warning(
                f"Photo-search throttles count in the cache {name!r} "
                f"({backend.rsplit('.', 1)[-1]}), which each process keeps to itself: every "
                "server process gives a client its own allowance.",
                hint="Use a shared cache: the database's (DatabaseCache, after `manage.py "
                "createcachetable`) or Redis (django-redis), or name one in "
                "VISUALSEARCH_THROTTLE_CACHE.",
                id="visualsearch.W001",
            )
        ]
    return []


@register()
def check_encoder(app_configs, **kwargs):
    """``VISUALSEARCH_ENCODER`` names a registered encoder. The registry maps names to
    dotted paths, so this imports no encoder (and no torch)."""
    from .encoders import available_encoders

    name = app_settings.ENCODER
    names = available_encoders()
    if name in names:
        return []
    return [
        Error(
            f"VISUALSEARCH_ENCODER is {name!r}, which is not a registered encoder.",
            hint=f"The encoders are {', '.join(names)}; register your own in "
            "VISUALSEARCH_ENCODERS = {name: 'dotted.path.EncoderClass'}.",
            id="visualsearch.E009",
        )
    ]


@register()
def check_api_viewset(app_configs, **kwargs):
    """``VISUALSEARCH_API_PRODUCT_VIEWSET`` imports and is a viewset (the URLconf stays
    loadable without it, so that this check, not a traceback, reports it)."""
    from .api import product_viewset

    try:
        product_viewset()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="visualsearch.E010")]
    return []


@register()
def check_photo_search_settings(app_configs, **kwargs):
    """The photo-search category prior's weight and margin are numbers, not negative, and
    the close-match score a number or ``None``: photo search reads them on every request,
    where a mistake would fail each search."""
    errors = []
    for name in ("CATEGORY_PRIOR", "CATEGORY_PRIOR_MARGIN"):
        value = getattr(app_settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            errors.append(
                Error(
                    f"VISUALSEARCH_{name} must be a number of at least 0, not {value!r}.",
                    hint="0 switches the category prior off.",
                    id="visualsearch.E011",
                )
            )
    value = app_settings.CLOSE_MATCH_SCORE
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        errors.append(
            Error(
                f"VISUALSEARCH_CLOSE_MATCH_SCORE must be a number or None, not {value!r}.",
                hint="None never tells a shopper that no product looks like their photo.",
                id="visualsearch.E012",
            )
        )
    return errors


@register()
def check_settings(app_configs, **kwargs):
    """``VISUALSEARCH_*`` settings that nothing reads (a typo)."""
    return unknown_settings(app_settings, "visualsearch.W002")


def relative_directory(setting, value, check_id):
    """A warning when ``value``, the path of ``setting``, is relative: each process finds it
    from its own working directory, so a file one process writes there (a worker, on
    another machine perhaps) is not where the others look for it."""
    if Path(value).is_absolute():
        return []
    return [
        Warning(
            f"{setting} is the relative path {str(value)!r}: each process finds it from its "
            "own working directory, so web and worker processes may not read the same files.",
            hint="Set it to an absolute path that every web and worker process reads, on "
            "every machine (a shared volume).",
            id=check_id,
        )
    ]


@register(deploy=True)
def check_artifact_dir(app_configs, **kwargs):
    """Deployed, several processes share the encoders exported to
    ``VISUALSEARCH_ARTIFACT_DIR``."""
    return relative_directory(
        "VISUALSEARCH_ARTIFACT_DIR",
        app_settings.ARTIFACT_DIR,
        "visualsearch.W003",
    )
