"""Settings shared by both plugin apps, and the machinery of every app's settings.

:class:`AppSettings` is the one base class of the three settings objects
(``lookalike.conf.app_settings``, ``visualsearch.conf.app_settings``,
``recommendations.conf.app_settings``): a prefix, and each setting an upper-case property
that returns the project's setting, or its default when the project has none. The project's
values are read once per process and forgotten on Django's ``setting_changed`` signal (sent
by ``override_settings`` and pytest-django's ``settings`` fixture), so changes there take
effect at once. Not on every access: a page reads settings a few hundred times (the
catalogue adapter's fields for every card), and ``getattr`` on Django's lazy settings costs
an exception for every setting the project leaves at its default.

The names an app knows are derived from its properties, so a system check can warn about a
project setting with the app's prefix that nothing reads: a typo is never silently ignored
(:func:`lookalike.checks.unknown_settings`).

The settings of this module carry the ``LOOKALIKE_`` prefix.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

#: ``{setting name: the project's value, or _MISSING}``, filled as settings are read.
_values: dict[str, object] = {}
_MISSING = object()


def _forget_values(**kwargs):
    _values.clear()


setting_changed.connect(_forget_values, dispatch_uid="lookalike.conf.forget_values")


def import_class(setting, path, base):
    """The class at dotted ``path``, the value of ``setting``, which must subclass ``base``.

    Raises
    ------
    ImproperlyConfigured
        Naming the setting, when ``path`` cannot be imported or is something else; the
        system checks report the message as it is.
    """
    if not isinstance(path, str):
        raise ImproperlyConfigured(f"{setting} must be a dotted path (a string), not {path!r}.")
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{setting}: cannot import {path!r} ({exc}).") from exc
    except RuntimeError as exc:  # a model of an app missing from INSTALLED_APPS
        raise ImproperlyConfigured(
            f"{setting}: importing {path!r} failed ({exc}); is its app in INSTALLED_APPS?"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ImproperlyConfigured(
            f"{setting}: {path!r} is not a subclass of {base.__module__}.{base.__qualname__}."
        )
    return cls


class AppSettings:
    """Base of an app's settings object; subclasses set :attr:`prefix` and declare each
    setting as a property returning ``self._setting(NAME, default)``."""

    prefix = ""

    def _setting(self, name, default):
        key = self.prefix + name
        try:
            value = _values[key]
        except KeyError:
            from django.conf import settings

            value = _values[key] = getattr(settings, key, _MISSING)
        return default if value is _MISSING else value

    def _var_path(self, *parts) -> Path:
        """A default under the project's ``VAR_DIR`` (``./var`` without one)."""
        from django.conf import settings

        return Path(getattr(settings, "VAR_DIR", Path.cwd() / "var")).joinpath(*parts)

    @classmethod
    def names(cls) -> list[str]:
        """The project settings this app reads, prefix included, sorted."""
        return sorted(
            cls.prefix + name
            for name in dir(cls)
            if name.isupper() and isinstance(getattr(cls, name), property)
        )

    def unknown(self, ignore=()) -> list[tuple[str, str | None]]:
        """``[(name, closest known name or None)]`` of the project settings with this
        app's prefix that it does not read (``ignore`` apart)."""
        from django.conf import settings

        known = self.names()
        # Compared without the prefix, which every name shares.
        short = [name.removeprefix(self.prefix) for name in known]
        unknown = []
        for name in sorted(dir(settings)):
            if name.startswith(self.prefix) and name not in known and name not in ignore:
                close = difflib.get_close_matches(name.removeprefix(self.prefix), short, n=1)
                unknown.append((name, self.prefix + close[0] if close else None))
        return unknown


#: The model the plugins' foreign keys name while ``LOOKALIKE_PRODUCT_MODEL`` is not set
#: (:meth:`LookalikeSettings.product_model_reference`); no such model exists.
PRODUCT_MODEL_UNSET = "lookalike.ProductModelNotSet"

#: The values of ``LOOKALIKE_JOBS_BACKEND`` that ``lookalike.jobs`` dispatches to.
JOBS_BACKENDS = ("worker", "celery", "inline")


class LookalikeSettings(AppSettings):
    prefix = "LOOKALIKE_"

    @property
    def PRODUCT_MODEL(self):
        """``app_label.ModelName`` of the host's product model: the target of every foreign
        key the plugins keep to a product (like ``AUTH_USER_MODEL``). Required."""
        return self._setting("PRODUCT_MODEL", None)

    def product_model_reference(self) -> str:
        """What the plugins' foreign keys to a product point at: ``LOOKALIKE_PRODUCT_MODEL``,
        read when their models are imported, like ``AUTH_USER_MODEL``.

        While the setting is missing they point at :data:`PRODUCT_MODEL_UNSET`, a model
        that does not exist: the project still loads, so ``manage.py check`` can report
        the setting (``lookalike.E002``) instead of failing with a traceback, and whatever
        asks for the product model at run time gets an ``ImproperlyConfigured`` that names
        it (:meth:`lookalike.catalogue.CatalogueAdapter.get_product_model`)."""
        return self.PRODUCT_MODEL or PRODUCT_MODEL_UNSET

    @property
    def CATALOGUE_ADAPTER(self):
        """Dotted path of the :class:`lookalike.catalogue.CatalogueAdapter` subclass that
        answers every question the plugins ask about products. The default reads flat
        fields of the product model named in ``LOOKALIKE_PRODUCT_FIELDS``."""
        return self._setting("CATALOGUE_ADAPTER", "lookalike.catalogue.FieldsCatalogueAdapter")

    @property
    def PRODUCT_FIELDS(self):
        """The product model's fields that :class:`~lookalike.catalogue.FieldsCatalogueAdapter`
        reads, ``{role: field name or None}``; ``None`` means the model has no such field
        (no category: no category filter; no stock: always in stock; and so on)."""
        fields = {
            "image": "image",
            "title": "title",
            "category": "category",
            "price": "price",
            "stock": "stock",
            "active": "is_active",
            "created": "created_at",
        }
        fields.update(self._setting("PRODUCT_FIELDS", {}))
        return fields

    @property
    def WIDGET_STYLESHEET(self):
        """Static path of the stylesheet the recommendation strips link to, so that they
        look right on any page with the default card; ``None`` when the shop styles them."""
        return self._setting("WIDGET_STYLESHEET", "lookalike/lookalike.css")

    @property
    def CURRENCY(self):
        """Currency code of the prices the adapter returns, for display (``"EUR"``)."""
        return self._setting("CURRENCY", "EUR")

    @property
    def BASE_TEMPLATE(self):
        """Template that the plugin pages ("Find similar", "Search by photo") extend. It
        must define the blocks ``title``, ``extrahead``, ``content`` and ``extrascripts``
        (django-oscar's ``oscar/layout.html`` does)."""
        return self._setting("BASE_TEMPLATE", "base.html")

    @property
    def CARD_TEMPLATE(self):
        """Template of one product in result grids and recommendation strips, used by both
        apps. It receives ``product`` (the model instance), ``score``, ``reason``,
        ``source`` and ``recommendation_id``; ``{{ product|product_card }}`` gives the
        adapter's :class:`~lookalike.catalogue.ProductCard`."""
        return self._setting("CARD_TEMPLATE", "lookalike/product_card.html")

    @property
    def REUSE_CARDS(self):
        """Whether rendered cards are kept per process and reused (:mod:`lookalike.cards`),
        in which case the card template sees nothing of the page or the shopper. A card
        template that does (``request``, ``user``, ``{% csrf_token %}`` in an add-to-basket
        form) needs ``False``: every card is then rendered each time, with the request's
        context processors."""
        return self._setting("REUSE_CARDS", True)

    @property
    def REUSE_FORMS(self):
        """Whether a filter form the shopper has not filled in is rendered once per process
        and reused (:mod:`lookalike.fragments`: the "find similar" page's filter fields), in
        which case its template sees ``form`` alone. A filter template that reads more of
        the page (the product, the shopper) needs ``False``: it is then rendered each time
        with the page's context, as an ``{% include %}`` would be."""
        return self._setting("REUSE_FORMS", True)

    # -- background jobs (lookalike.jobs) ---------------------------------------------------
    @property
    def JOBS_BACKEND(self):
        """Where jobs run: ``"worker"`` (a ``manage.py run_jobs`` process claims queued rows),
        ``"celery"`` (``lookalike.jobs.tasks`` on Celery workers) or ``"inline"`` (in the
        process that queued them, after commit: tests)."""
        return self._setting("JOBS_BACKEND", "worker")

    @property
    def JOBS_QUEUED_TIMEOUT(self):
        """Seconds a queued job may wait for a worker while no job runs at all before it is
        marked failed (no worker is running)."""
        return self._setting("JOBS_QUEUED_TIMEOUT", 600)

    @property
    def JOBS_CHUNK_ATTEMPTS(self):
        """Deliveries of one chunk of a fanned-out job before it is given up (its workers
        kept dying on it)."""
        return self._setting("JOBS_CHUNK_ATTEMPTS", 5)

    @property
    def JOBS_STALE_SECONDS(self):
        """Seconds without a heartbeat after which a running job whose key's lock no session
        holds counts as dead, and is reaped. Running jobs beat every half second or so (and
        the chunks of a fanned-out job with each batch they commit)."""
        return self._setting("JOBS_STALE_SECONDS", 30)

    @property
    def JOBS_TAKEOVERS(self):
        """How many times in a row a Celery job whose process died is resumed on its own
        when Celery hands its message back (:mod:`lookalike.jobs.takeover`); after that it
        stays failed, for a person to look into (a job that kills every process running it,
        out of memory say)."""
        return self._setting("JOBS_TAKEOVERS", 3)

    @property
    def JOBS_CHUNK_STALL_SECONDS(self):
        """Seconds without progress of any chunk after which a fanned-out job fails (no
        worker takes its chunks); it can be resumed."""
        return self._setting("JOBS_CHUNK_STALL_SECONDS", 900)

    # -- deployment: read replicas (lookalike.routing), metrics (lookalike.metrics) ---------
    @property
    def REPLICA_APPS(self):
        """Apps whose models' reads in a request go to a replica; ``None``: ``visualsearch``,
        ``recommendations`` and the app of ``LOOKALIKE_PRODUCT_MODEL``."""
        return self._setting("REPLICA_APPS", None)

    @property
    def PRIMARY_MODELS(self):
        """Models of those apps whose reads stay on the primary (shoppers write them)."""
        return self._setting("PRIMARY_MODELS", ["recommendations.Event"])

    @property
    def PRIMARY_PATHS(self):
        """Path prefixes whose requests read from the primary only."""
        return self._setting("PRIMARY_PATHS", ["/admin/"])

    @property
    def REPLICA_COOLDOWN(self):
        """Seconds a replica that failed its check is skipped by this process."""
        return self._setting("REPLICA_COOLDOWN", 5.0)

    @property
    def METRICS_COLLECTORS(self):
        """Dotted paths of the Prometheus collectors read when metrics are scraped."""
        return self._setting("METRICS_COLLECTORS", ["lookalike.jobs.metrics.JobsCollector"])

    @property
    def METRICS_TOKEN(self):
        """A secret that scrapers must send as ``Authorization: Bearer <token>`` (what
        Prometheus' ``authorization`` scrape setting sends); ``None`` serves ``/metrics`` to
        anyone who reaches it, for a deployment whose proxy limits it to the monitoring
        network."""
        return self._setting("METRICS_TOKEN", None)

    @property
    def METRICS_SEARCH_VIEWS(self):
        """``{URL name: endpoint label}`` of the views whose latency is measured; ``None``:
        ``lookalike.metrics.DEFAULT_SEARCH_VIEWS``."""
        return self._setting("METRICS_SEARCH_VIEWS", None)


app_settings = LookalikeSettings()
