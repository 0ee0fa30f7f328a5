"""The committed notebooks carry no outputs and keep the shape the notebook tests rely on.

Fast and database-free: it reads the .ipynb files only. Fix a failure with
``.venv/bin/python notebooks/strip_outputs.py``.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SETUP_LINE = "from config.notebook import setup; setup()"


def _strip_outputs_module():
    spec = importlib.util.spec_from_file_location(
        "strip_outputs", NOTEBOOK_DIR / "strip_outputs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


strip_outputs = _strip_outputs_module()


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_explore_embeddings.ipynb",
        "02_tune_blend.ipynb",
        "03_recommender_eval.ipynb",
        "04_experiments.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert strip_outputs.problems(nb) == [], (
        f"{path.name} was saved with outputs; run .venv/bin/python notebooks/strip_outputs.py"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_then_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code[0].source.strip() == SETUP_LINE
    assert "parameters" in code[1].metadata.get("tags", []), (
        "the second code cell must be tagged 'parameters' (the tests inject values after it)"
    )
    assert nb.metadata["kernelspec"]["name"] == "python3"
    # No secrets or machine-specific paths: the database comes from the environment.
    text = "\n".join(cell.source for cell in nb.cells)
    for forbidden in ("DATABASE_URL", "password", "/work/", "/home/"):
        assert forbidden not in text


def test_strip_removes_outputs_and_keeps_tags(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print(x)"),
        ]
    )
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[1].execution_count = 3
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2025-01-01T00:00:00Z"}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)

    assert strip_outputs.main(["--check", str(path)]) == 1
    assert strip_outputs.main([str(path)]) == 0
    assert strip_outputs.main(["--check", str(path)]) == 0
    clean = nbformat.read(path, as_version=4)
    assert clean.cells[1].outputs == []
    assert clean.cells[1].execution_count is None
    assert clean.cells[0].metadata["tags"] == ["parameters"]
