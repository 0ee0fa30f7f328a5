"""Running the analysts' notebooks headless against a small shop in the test database.

A notebook runs in its own kernel process, which cannot see data inside a test's
transaction. So the shop is built once per module *outside* any test transaction
(``django_db_blocker.unblock()``), committed to the pytest test database, and the
kernel is pointed at that database with ``LOOKALIKE_DB_NAME`` -- the same variable that
``config/settings.py`` reads for every process. When the module is done the database is
flushed and put back as migrations left it (the ``default`` blend profile included), so
tests that run later see an empty shop.
"""

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from django.core.management import call_command
from django.test import override_settings
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from traitlets import default

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
PROJECT_ROOT = NOTEBOOK_DIR.parent

# Small enough for the three notebooks to run in a couple of minutes on two cores, big
# enough that every category has neighbours and ALS has overlapping shoppers to learn from.
CATALOGUE_SIZE = 200
SHOPPERS = 60
CELL_TIMEOUT = 300


@dataclass
class NotebookShop:
    """What the kernel needs to see the shop the fixture built."""

    db_name: str
    media_root: Path
    var_dir: Path
    pgdata: Path | None
    default_profile: str

    def kernel_env(self):
        env = dict(os.environ)
        # The kernel starts in notebooks/ like `make notebook`'s, which puts the project
        # on PYTHONPATH so that the first cell can import config.notebook.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["DJANGO_SETTINGS_MODULE"] = "config.settings"
        env["LOOKALIKE_DB_NAME"] = self.db_name
        env["LOOKALIKE_MEDIA_ROOT"] = str(self.media_root)
        # Model artefacts (ONNX export, projection, recommender .npz) of this small shop
        # live beside its media, never in the developer's var/ ...
        env["LOOKALIKE_VAR_DIR"] = str(self.var_dir)
        # ... but the database server stays the one this test process already runs.
        if self.pgdata is not None:
            env["LOOKALIKE_PGDATA"] = str(self.pgdata)
        env["LOOKALIKE_JOBS_BACKEND"] = "inline"
        # Two cores: keep BLAS from oversubscribing them inside the kernel.
        env.setdefault("OMP_NUM_THREADS", "2")
        return env


def _pgdata():
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "config.dbbackend":
        return None  # DATABASE_URL: the kernel finds the same server from the environment
    from config.embedded import pgdata_dir

    return pgdata_dir()


def _seed_model_cache(var_dir):
    """Reuse the developer's ONNX exports: they depend on the weights only (keyed by their
    hash), unlike the catalogue projection, which must come from this small shop."""
    from django.conf import settings

    source = Path(settings.VAR_DIR) / "models"
    target = var_dir / "models"
    target.mkdir(parents=True, exist_ok=True)
    for onnx in source.glob("*.onnx"):
        if not (target / onnx.name).exists():
            shutil.copy2(onnx, target / onnx.name)


def build_shop(size=CATALOGUE_SIZE, shoppers=SHOPPERS):
    """Load, index, simulate and train through the same services the shop uses."""
    from recommendations.offline.simulation import simulate_shoppers
    from recommendations.services.training import train
    from visualsearch.indexing import reindex

    steps = [
        ("catalogue", lambda: call_command("load_demo_catalog", size=size, verbosity=0)),
        ("index", reindex),
        ("shoppers", lambda: simulate_shoppers(users=shoppers, seed=0)),
        ("training", train),
    ]
    for name, step in steps:
        started = time.perf_counter()
        step()
        # Shown with -s or on failure: where a slow run spends its time.
        print(f"notebook shop: {name} in {time.perf_counter() - started:.1f}s")


@pytest.fixture(scope="module")
def notebook_shop(django_db_setup, django_db_blocker, tmp_path_factory):
    """The small shop, committed to the test database for the module's notebooks.

    The tests using it must be marked ``django_db``: pytest-django only creates the test
    database for the databases that marked tests ask for.
    """
    from django.db import connection

    root = tmp_path_factory.mktemp("notebook-shop")
    media_root, var_dir = root / "media", root / "var"
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
        # This fixture commits and then flushes: never let it near a real database.
        assert name.startswith("test_"), f"not a test database: {name!r}"
        pgdata = _pgdata()
        _seed_model_cache(var_dir)
        initial = connection.creation.serialize_db_to_string()
        with override_settings(
            MEDIA_ROOT=media_root, VAR_DIR=var_dir, LOOKALIKE_JOBS_BACKEND="inline"
        ):
            try:
                from recommendations.models import BlendProfile

                build_shop()
                default = BlendProfile.objects.get(is_default=True).name
                yield NotebookShop(
                    db_name=name,
                    media_root=media_root,
                    var_dir=var_dir,
                    pgdata=pgdata,
                    default_profile=default,
                )
            finally:
                # Back to what migrations left (the "default" blend profile included), as
                # TransactionTestCase's serialized_rollback does. Sequences are not reset,
                # so the restored rows keep their ids without colliding with new ones.
                call_command(
                    "flush",
                    interactive=False,
                    verbosity=0,
                    reset_sequences=False,
                    inhibit_post_migrate=True,
                )
                connection.creation.deserialize_db_from_string(initial)


def inject_parameters(nb, parameters):
    """Insert a cell setting ``parameters`` right after the cell tagged ``parameters``.

    What papermill does: the notebook keeps its full-size defaults for analysts, and
    the injected cell overrides them for a quick run.
    """
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise AssertionError(f"expected one cell tagged 'parameters', found {len(tagged)}")
    index = tagged[0]
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, injected)
    return index + 1


def expected_prefix_check():
    """A cell that fails when the kernel is not this virtualenv's Python."""
    return (
        "import sys\n"
        f"assert sys.prefix == {sys.prefix!r}, "
        "f'kernel runs {sys.executable}, not the project virtualenv'"
    )


class VenvKernelManager(AsyncKernelManager):
    """Starts the ``python3`` kernel of *this* virtualenv.

    Only the virtualenv's own kernelspecs are searched (ipykernel's built-in one is the
    fallback, and it runs ``sys.executable``), so a ``python3`` kernelspec in the user's
    ``~/.local/share/jupyter`` pointing at another Python is never picked up.
    """

    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self):
        venv_kernels = Path(sys.prefix, "share", "jupyter", "kernels")
        return KernelSpecManager(kernel_dirs=[str(venv_kernels)])


def run_notebook(name, shop, parameters):
    """Execute ``notebooks/<name>`` in a fresh ``python3`` kernel; return the executed nb."""
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    index = inject_parameters(nb, parameters)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(expected_prefix_check()))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        kernel_manager_class=VenvKernelManager,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    try:
        client.execute(env=shop.kernel_env())
    finally:
        print(f"{name}: " + ", ".join(f"cell {i} {t:.1f}s" for i, t in cell_seconds(nb) if t >= 1))
    return nb


def cell_seconds(nb):
    """``(index, seconds)`` of each executed cell, from nbclient's timing metadata."""
    from datetime import datetime

    found = []
    for index, cell in enumerate(nb.cells):
        timing = cell.metadata.get("execution", {})
        start, end = timing.get("iopub.status.busy"), timing.get("iopub.status.idle")
        if start and end:
            seconds = datetime.fromisoformat(end) - datetime.fromisoformat(start)
            found.append((index, seconds.total_seconds()))
    return found


def outputs_of_type(nb, mime):
    """Every output of ``nb`` carrying ``mime`` data (e.g. ``image/png``)."""
    return [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if mime in output.get("data", {})
    ]


def text_of(nb):
    """All stream and plain-text output of ``nb``, for asserting on printed figures."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output["text"])
            elif "text/plain" in output.get("data", {}):
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)
