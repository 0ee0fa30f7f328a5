"""One-line set-up for Jupyter notebooks: ``from config.notebook import setup; setup()``.

A notebook kernel is a plain Python process: it has not gone through ``manage.py``, so
Django is not configured, and Jupyter runs an asyncio event loop in it, which makes
Django refuse synchronous database access unless ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set.
:func:`setup` does what ``manage.py`` would and connects once, so that the embedded
PostgreSQL server is started (or attached to) before the first query.

The database is chosen exactly as for every other process (``DATABASE_URL`` or the
embedded server; ``LOOKALIKE_DB_NAME`` picks the database name, which is how the
notebook tests point a kernel at the pytest test database). No secrets belong in
notebooks: everything comes from the environment and ``config/settings.py``.
"""

import os
import sys
from pathlib import Path

__all__ = ["PROJECT_ROOT", "setup"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def setup(settings_module="config.settings", check_migrations=True):
    """Configure Django in a notebook kernel and connect to the database.

    Safe to call more than once (re-running the first cell does nothing new).

    Parameters
    ----------
    settings_module : str
        Used only when ``DJANGO_SETTINGS_MODULE`` is not already set.
    check_migrations : bool
        Raise a clear error when the database lacks migrations, rather than letting a
        later cell fail on a missing table.

    Returns
    -------
    str
        The name of the database the notebook is connected to, so the first cell's
        output says which data the figures below come from.
    """
    # The kernel starts in notebooks/; the project's packages live one folder up.
    root = str(PROJECT_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    # Jupyter runs cells inside an event loop; Django's guard against blocking database
    # calls from async code would refuse every query. A kernel runs one cell at a time,
    # so the guard protects nothing here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

    import django

    django.setup()
    _quiet()

    from django.db import connection

    connection.ensure_connection()
    if check_migrations:
        _check_migrations(connection)
    return connection.settings_dict["NAME"]


def _check_migrations(connection):
    from django.core.exceptions import ImproperlyConfigured
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        pending = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        more = f" and {len(plan) - 5} more" if len(plan) > 5 else ""
        raise ImproperlyConfigured(
            f"The database {connection.settings_dict['NAME']!r} has unapplied migrations "
            f"({pending}{more}). Run `make notebook` (it migrates first) or "
            "`.venv/bin/python manage.py migrate`."
        )


# -- pictures ---------------------------------------------------------------------------
# Presentation only: the notebooks get their products from the services, and these draw
# them. Kept here so the notebooks do not each carry their own copy.


def product_image(product):
    """The product's photo as a PIL image, read through the catalogue adapter."""
    from PIL import Image

    from lookalike.catalogue import get_adapter

    adapter = get_adapter()
    with adapter.open_image(adapter.get_image_name(product)) as fh:
        image = Image.open(fh)
        image.load()
    return image


def show_product_rows(rows, *, title=None, size=1.4, max_columns=None):
    """Draw rows of product thumbnails, one labelled row per query or shopper.

    Parameters
    ----------
    rows : list of (str, list)
        ``(row label, items)``; an item is a product, or ``(product, caption)``, or
        ``(product, caption, good)`` where ``good`` colours the caption (green for a
        match, red for a miss, black when ``None``).
    title : str, optional
    size : float
        Inches per thumbnail.
    max_columns : int, optional
        Cut longer rows.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import textwrap

    import matplotlib.pyplot as plt

    columns = max((len(items) for _, items in rows), default=1)
    if max_columns:
        columns = min(columns, max_columns)
    columns = max(columns, 1)
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(size * columns, (size + 0.6) * len(rows)), squeeze=False
    )
    for r, (label, items) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c >= len(items):
                continue
            item = items[c] if isinstance(items[c], tuple) else (items[c], "")
            product, caption, good = (*item, None)[:3]
            ax.imshow(product_image(product), cmap="gray")
            color = {True: "tab:green", False: "tab:red"}.get(good, "black")
            ax.set_title(textwrap.fill(caption, 20), fontsize=6.5, color=color)
        axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _quiet():
    """Keep cells' outputs to what the notebook shows: tqdm's note that the notebook has
    no widget library (its progress bars fall back to text) and the serving layer's
    INFO lines ("Loaded recommender v2") on every model load are noise to an analyst."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message="IProgress not found")
    logging.getLogger("recommendations").setLevel(logging.WARNING)
    logging.getLogger("visualsearch").setLevel(logging.WARNING)
