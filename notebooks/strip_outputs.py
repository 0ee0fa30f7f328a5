"""Strip outputs from notebooks before they are committed.

Outputs hold figures of whatever database the notebook last ran against (megabytes of
PNG, possibly real shoppers' data) and make every diff unreadable, so notebooks are
committed clean. ``tests/notebooks/test_clean.py`` fails when one is not.

Usage::

    .venv/bin/python notebooks/strip_outputs.py            # strip every notebook here
    .venv/bin/python notebooks/strip_outputs.py --check    # only report; exit 1 if dirty
    .venv/bin/python notebooks/strip_outputs.py path/to/a.ipynb ...
"""

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent
# Notebook-level metadata written by a run, not by the author.
RUN_METADATA = ("widgets", "papermill", "execution")
# Cell metadata written by a run; "tags" (the parameters cell) is the author's and stays.
CELL_RUN_METADATA = ("execution", "collapsed", "scrolled", "papermill", "ExecuteTime")


def problems(nb):
    """Describe what a run left in ``nb``; an empty list means it is clean."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index} has outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index} has an execution count")
        leftover = [key for key in CELL_RUN_METADATA if key in cell.metadata]
        if leftover:
            found.append(f"cell {index} has run metadata {leftover}")
    leftover = [key for key in RUN_METADATA if key in nb.metadata]
    if leftover:
        found.append(f"notebook has run metadata {leftover}")
    return found


def strip(nb):
    """Remove outputs, execution counts and run metadata from ``nb`` in place."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in CELL_RUN_METADATA:
            cell.metadata.pop(key, None)
    for key in RUN_METADATA:
        nb.metadata.pop(key, None)
    return nb


def notebooks(paths=None):
    if paths:
        return [Path(p) for p in paths]
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="Notebooks (default: every one in notebooks/).")
    parser.add_argument("--check", action="store_true", help="Report only; exit 1 if any is dirty.")
    args = parser.parse_args(argv)
    dirty = 0
    for path in notebooks(args.paths):
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        found = problems(nb)
        if not found:
            continue
        dirty += 1
        if args.check:
            print(f"{path}: {'; '.join(found)}")
        else:
            nbformat.write(strip(nb), path)
            print(f"{path}: stripped")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
