"""System checks of the host seam: the product model, the adapter and the queries the
plugins build from it, the templates and the jobs backend, renamed and misspelt settings.

Registered when either plugin app is ready; each message names the setting to fix, the way
``django.contrib.auth.checks`` names ``AUTH_USER_MODEL``. They stay fast and need no
database (the adapter's querysets are compiled to SQL, never run), except the one tagged
``database`` (``check --database``, and ``migrate``): the cache tables."""

import uuid
from decimal import Decimal

from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import EmptyResultSet, ImproperlyConfigured, ObjectDoesNotExist
from django.db import DatabaseError, models

from .conf import JOBS_BACKENDS, PRODUCT_MODEL_UNSET, app_settings

#: Settings of earlier versions and what replaced them.
RENAMED = {
    "VISUALSEARCH_PRODUCT_FIELDS": "LOOKALIKE_PRODUCT_FIELDS",
    "RECOMMENDATIONS_PRODUCT_FIELDS": "LOOKALIKE_PRODUCT_FIELDS",
    "RECOMMENDATIONS_CARD_TEMPLATE": "LOOKALIKE_CARD_TEMPLATE",
}


@register()
def check_catalogue(app_configs=None, **kwargs):
    from django.apps import apps
    from django.conf import settings

    from .catalogue import get_adapter, product_model

    errors = [
        Error(
            f"{old} is no longer read; use {new}.",
            hint="See 'Add Lookalike to your shop' in the README.",
            id="lookalike.E001",
        )
        for old, new in RENAMED.items()
        if hasattr(settings, old)
    ]
    if not app_settings.PRODUCT_MODEL:
        errors.append(
            Error(
                "LOOKALIKE_PRODUCT_MODEL is not set.",
                hint="Set it to your product model, e.g. LOOKALIKE_PRODUCT_MODEL = "
                "'catalogue.Product'. Until then the plugins' foreign keys point at "
                f"{PRODUCT_MODEL_UNSET!r}, which Django reports as fields.E300 and E307.",
                id="lookalike.E002",
            )
        )
        return errors
    try:
        model = product_model()
        adapter = get_adapter()
        served = adapter.get_product_model()
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), hint=_model_label_hint(), id="lookalike.E003"))
        return errors
    try:
        adapter_errors = adapter.check()
    except Exception as exc:  # a broken adapter must be reported, not crash `check`
        adapter_errors = [
            Error(
                f"LOOKALIKE_CATALOGUE_ADAPTER {app_settings.CATALOGUE_ADAPTER}: its check() "
                f"failed with {type(exc).__name__}: {exc}",
                id="lookalike.E005",
            )
        ]
    if apps.is_installed("lookalike.contrib.oscar"):
        from .contrib.oscar.checks import fields_adapter_errors

        adapter_errors = fields_adapter_errors(adapter, adapter_errors)
    errors.extend(adapter_errors)
    # A field name not on the model would only fail again in every query built on it.
    if not any(message.is_serious() for message in adapter_errors):
        errors.extend(check_adapter_queries(adapter, model, served))
    return errors


def _model_label_hint():
    """For a setting without its app label (``"Product"``) or with another app's
    (``"oscar.Product"`` for ``catalogue.Product``): Django only says there is no such model."""
    from django.apps import apps

    label, _, model_name = str(app_settings.PRODUCT_MODEL).rpartition(".")
    named = [m._meta for m in apps.get_models() if m._meta.model_name == model_name.lower()]
    if any(meta.app_label == label for meta in named):
        return None  # the model is installed: the adapter failed
    found = f"did you mean {' or '.join(repr(meta.label) for meta in named)}?"
    if label:
        return f"The model is installed with another app label: {found}" if named else None
    ending = f": {found}" if named else ", e.g. 'catalogue.Product'."
    return f"Name the model with its app label, 'app_label.ModelName'{ending}"


def _adapter_error(method, exc):
    return Error(
        f"LOOKALIKE_CATALOGUE_ADAPTER {app_settings.CATALOGUE_ADAPTER!r}: {method} fails with "
        f"{type(exc).__name__}: {exc}",
        hint="The plugins build this query for their pages and searches; fix that method "
        "of the adapter (lookalike.catalogue.CatalogueAdapter documents each).",
        id="lookalike.E006",
    )


def _sample_category_key(adapter):
    """A key of the type of the adapter's category keys, for :meth:`filter_category`."""
    try:
        field = adapter.get_category_queryset().model._meta.pk
    except Exception:  # no categories, or a broken queryset that is reported on its own
        return 1
    while field.is_relation:  # a one-to-one primary key
        field = field.target_field
    if isinstance(field, models.UUIDField):
        return uuid.UUID(int=1)
    return "1" if isinstance(field, (models.CharField, models.TextField)) else 1


def _adapter_queries(adapter, served):
    """``[(method, build)]``: the querysets the plugins build from ``adapter``, each
    expression and filter applied to the whole product table on its own, so that a
    failure names the method at fault."""
    products = served._base_manager.all()

    def annotated(method):
        expression = getattr(adapter, method)()
        return products if expression is None else products.annotate(_check=expression)

    def categories():
        queryset = adapter.get_category_queryset()
        return products.none() if queryset is None else queryset

    return [
        *(
            (f"{method}()", lambda method=method: annotated(method))
            for method in (
                "image_name_expression",
                "category_key_expression",
                "category_copy_expression",
                "price_expression",
                "created_expression",
            )
        ),
        ("get_category_queryset()", categories),
        (
            "filter_category(queryset, key)",
            lambda: adapter.filter_category(products, _sample_category_key(adapter)),
        ),
        (
            "filter_price(queryset, 1, 2)",
            lambda: adapter.filter_price(products, Decimal(1), Decimal(2)),
        ),
        ("filter_in_stock(queryset)", lambda: adapter.filter_in_stock(products)),
        # Last: it joins the expressions above (and a subclass's own).
        ("annotate(get_queryset())", lambda: adapter.annotate(adapter.get_queryset())),
    ]


def _compile(build):
    """``(queryset, None)`` from ``build()`` with its SQL compiled (no database round
    trip), or ``(None, exception)``; ``(None, None)`` when the adapter asked the database
    itself, whose rows a check does not need."""
    try:
        queryset = build()
        try:
            queryset.query.sql_with_params()
        except EmptyResultSet:  # ``none()``, or a filter nothing passes: valid
            pass
    except (DatabaseError, ObjectDoesNotExist):
        return None, None
    except Exception as exc:  # a broken adapter must be reported, not crash `check`
        return None, exc
    return queryset, None


def check_adapter_queries(adapter, model, served):
    """Errors for an adapter serving another model than ``model``, the setting's, which the
    plugins' foreign keys point at (``served`` is the adapter's own product model), and for
    the adapter's querysets that do not compile: an expression naming a field the model
    lacks, a method left undefined, each a 500 on every page that uses it."""
    failures, served_models = {}, {"get_product_model()": served}
    for method, build in (
        ("get_queryset()", adapter.get_queryset),
        ("get_indexed_queryset()", adapter.get_indexed_queryset),
    ):
        queryset, exc = _compile(build)
        if exc is not None:
            failures.setdefault(str(exc), (method, exc))
        elif queryset is not None:
            served_models[method] = queryset.model
    mismatches = _model_mismatches(model, served_models)
    # With a mismatch, the served model's expressions would only fail on the product table.
    if not mismatches:
        for method, build in _adapter_queries(adapter, served):
            if failures and method.startswith("annotate("):
                break  # it would fail again with what failed before
            _, exc = _compile(build)
            if exc is not None:
                # One cause, once: filter_price() fails with the price_expression() it uses.
                failures.setdefault(str(exc), (method, exc))
        try:
            adapter.get_dependent_models()
        except Exception as exc:
            failures.setdefault(str(exc), ("get_dependent_models()", exc))
    return [_adapter_error(method, exc) for method, exc in failures.values()] + mismatches


def _model_mismatches(model, served_models):
    wrong = {}
    for method, other in served_models.items():
        if other._meta.concrete_model is not model._meta.concrete_model:
            wrong.setdefault(other._meta.label, []).append(method)
    return [
        Error(
            f"LOOKALIKE_CATALOGUE_ADAPTER {app_settings.CATALOGUE_ADAPTER!r} serves {label} "
            f"({', '.join(methods)}), but LOOKALIKE_PRODUCT_MODEL is "
            f"{app_settings.PRODUCT_MODEL!r}, the model the plugins' foreign keys point at.",
            hint="Name the model the adapter serves in LOOKALIKE_PRODUCT_MODEL, or make the "
            "adapter serve that one.",
            id="lookalike.E004",
        )
        for label, methods in wrong.items()
    ]


@register(Tags.templates)
def check_templates(app_configs=None, **kwargs):
    """The templates named in settings exist and compile: every plugin page extends the base
    template and every result card renders the card template."""
    from django.template import TemplateDoesNotExist, TemplateSyntaxError
    from django.template.loader import get_template

    errors = []
    for setting, name in (
        ("LOOKALIKE_BASE_TEMPLATE", app_settings.BASE_TEMPLATE),
        ("LOOKALIKE_CARD_TEMPLATE", app_settings.CARD_TEMPLATE),
    ):
        try:
            get_template(name)
        except TemplateDoesNotExist:
            problem = "which no template loader finds"
        except TemplateSyntaxError as exc:
            problem = f"which does not compile: {exc}"
        else:
            continue
        errors.append(
            Error(
                f"{setting} names the template {name!r}, {problem}.",
                hint="Name a template of your project (see TEMPLATES' DIRS and APP_DIRS).",
                id="lookalike.E007",
            )
        )
    if not errors:
        errors.extend(_check_base_blocks(app_settings.BASE_TEMPLATE))
    return errors


#: The blocks the plugin pages fill in the base template: without "extrahead" and
#: "extrascripts" they render with no stylesheet and no script (no drag-and-drop, no crop).
BASE_BLOCKS = ("title", "extrahead", "content", "extrascripts")


def _blocks(name, seen=()):
    """The block names template ``name`` defines or inherits (``None`` when a parent is
    chosen at run time, so the set cannot be known)."""
    from django.template import Context
    from django.template.loader import get_template
    from django.template.loader_tags import BlockNode, ExtendsNode

    template = get_template(name).template
    names = {node.name for node in template.nodelist.get_nodes_by_type(BlockNode)}
    for node in template.nodelist.get_nodes_by_type(ExtendsNode):
        if node.parent_name.filters or not isinstance(node.parent_name.var, str):
            return None  # {% extends variable %}
        parent = node.parent_name.resolve(Context())
        if parent in seen:
            return names
        inherited = _blocks(parent, (*seen, name))
        return None if inherited is None else names | inherited
    return names


def _check_base_blocks(name):
    try:
        found = _blocks(name)
    except Exception:  # a parent that does not load is Django's own error to report
        return []
    missing = [block for block in BASE_BLOCKS if found is not None and block not in found]
    if not missing:
        return []
    return [
        Warning(
            f"LOOKALIKE_BASE_TEMPLATE {name!r} has no block "
            f"{', '.join(map(repr, missing))}: the plugin pages put their "
            "title, stylesheets, content and scripts in those blocks.",
            hint="Define {% block title %}, {% block extrahead %}, {% block content %} and "
            "{% block extrascripts %} in the base template (empty blocks will do).",
            id="lookalike.W004",
        )
    ]


@register()
def check_jobs_backend(app_configs=None, **kwargs):
    backend = app_settings.JOBS_BACKEND
    if backend in JOBS_BACKENDS:
        return []
    return [
        Error(
            f"LOOKALIKE_JOBS_BACKEND is {backend!r}; it must be one of "
            f"{', '.join(map(repr, JOBS_BACKENDS))}.",
            hint="'worker': a `manage.py run_jobs` process runs the jobs; 'celery': Celery "
            "workers (pip install 'lookalike[celery]'); 'inline': the process that queues "
            "them (tests).",
            id="lookalike.E008",
        )
    ]


def unknown_settings(app_settings, check_id):
    """Warnings for the project settings with ``app_settings``' prefix that it does not
    read: a misspelt name would otherwise be ignored without a word. Each names the
    closest known setting; settings that were renamed are :data:`RENAMED`'s errors."""
    warnings = []
    for name, closest in app_settings.unknown(ignore=RENAMED):
        hint = f"Did you mean {closest}?" if closest else None
        warnings.append(
            Warning(
                f"{name} is not a setting of {app_settings.prefix.rstrip('_').lower()}; "
                "it is ignored.",
                hint=hint or f"Its settings are documented in {type(app_settings).__module__}.",
                id=check_id,
            )
        )
    return warnings


@register()
def check_settings(app_configs=None, **kwargs):
    return unknown_settings(app_settings, "lookalike.W001")


@register()
def check_shared_cache(app_configs=None, **kwargs):
    """The per-process caches of profiles, experiments and the catalogue are checked against
    stamps in ``CACHES["default"]`` (:mod:`lookalike.stamps`): a cache each process keeps to
    itself never tells the other processes that a profile was published or a product saved."""
    from django.conf import settings

    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend.endswith("LocMemCache"):
        return [
            Warning(
                'CACHES["default"] is kept by each process to itself: other processes '
                "would keep serving a blend profile, an experiment or catalogue pages that "
                "changed until they restart.",
                hint="Use a cache every process shares (Redis, or Django's database cache) "
                "when the shop runs more than one process.",
                id="lookalike.W002",
            )
        ]
    return []


@register(Tags.database, Tags.caches)
def check_cache_tables(app_configs=None, databases=None, **kwargs):
    """A database cache whose table was never created (``manage.py createcachetable``)
    fails every call: the photo-search throttle and the shopper counts then count nothing,
    and each request logs it. A warning, not an error: ``migrate`` runs this check before
    the table can be created, on a new database."""
    from django.conf import settings
    from django.core.cache import caches
    from django.core.cache.backends.db import DatabaseCache
    from django.db import connections, router

    warnings = []
    for alias in settings.CACHES:
        cache = caches[alias]
        if not isinstance(cache, DatabaseCache):
            continue
        database = router.db_for_write(cache.cache_model_class)
        if database not in (databases or []):
            continue
        try:
            tables = connections[database].introspection.table_names()
        except DatabaseError:
            continue  # an unreachable database is reported by the plugins' own check
        if cache._table not in tables:
            warnings.append(
                Warning(
                    f'CACHES["{alias}"] is the database table {cache._table!r}, which does '
                    f"not exist in database {database!r}: photo searches are not "
                    "throttled and shopper counts are not kept.",
                    hint="Run `manage.py createcachetable`.",
                    id="lookalike.W003",
                )
            )
    return warnings
