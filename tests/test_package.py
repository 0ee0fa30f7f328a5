"""The plugin as a shop installs it: a wheel built from this tree, installed into a new
virtualenv, used by a host shop that no module of this repository knows about.

The new virtualenv takes the plugin from the wheel only; its third-party dependencies
(torch alone is gigabytes) come from this project's virtualenv through a path entry, which
adds that folder to ``sys.path`` without running its ``.pth`` files, so the editable install
of this tree stays invisible there. The host shop (``tests/hosts/uuidshop``) is copied to a
temporary folder and its own tests run there, against the embedded PostgreSQL of this test
run.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "tests" / "hosts" / "uuidshop"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        capture_output=True, text=True, env={**os.environ, "TMPDIR": str(build)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    [path] = out.glob("lookalike-*.whl")
    return path


def test_the_wheel_holds_the_plugin_apps_and_nothing_of_the_shop(wheel):
    import lookalike

    assert wheel.name.startswith(f"lookalike-{lookalike.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"lookalike", "visualsearch", "recommendations",
                    f"lookalike-{lookalike.__version__}.dist-info"}  # fmt: skip
    for expected in (
        "lookalike/jobs/migrations/0001_initial.py",
        "visualsearch/migrations/0001_extensions.py",
        "recommendations/migrations/0001_initial.py",
        "visualsearch/templates/visualsearch/similar.html",
        "recommendations/templates/recommendations/strip.html",
        "lookalike/templates/lookalike/product_card.html",
        "visualsearch/static/visualsearch/crop.js",
        "lookalike/jobs/management/commands/run_jobs.py",
        "visualsearch/management/commands/reindex.py",
    ):
        assert expected in names
    metadata = (
        zipfile.ZipFile(wheel)
        .read(f"lookalike-{lookalike.__version__}.dist-info/METADATA")
        .decode()
    )
    assert "Requires-Dist: Django" in metadata and "Provides-Extra: celery" in metadata
    assert "License-Expression: BSD-3-Clause" in metadata
    assert f"lookalike-{lookalike.__version__}.dist-info/licenses/LICENSE" in names


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A new virtualenv with the wheel installed and this project's dependencies on its path."""
    path = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    ours = Path(sysconfig.get_paths()["purelib"])
    (site / "dependencies.pth").write_text(f"{ours}\n")
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return python


@pytest.mark.django_db
def test_a_uuid_shop_configured_from_the_docs_works_end_to_end(venv, tmp_path):
    from django.db import connection

    host = tmp_path / "uuidshop"
    shutil.copytree(HOST, host, ignore=shutil.ignore_patterns("__pycache__", "media", "var"))
    socket_dir = connection.get_connection_params()["host"]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTHON", "LOOKALIKE_"))
    }
    env.update(
        DATABASE_URL=f"postgres://postgres@{quote(str(socket_dir), safe='')}/postgres",
        UUIDSHOP_VAR=str(tmp_path / "var"),
    )
    result = subprocess.run(
        [str(venv), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=host, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
