import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from recommendations.services.als_parameters import PARAMETER_NAMES, als_parameters

DATASETS = {"movielens-100k": "load_movielens_100k"}
#: The longest list evaluated (a cut-off past it is a typo, and costs memory per shopper).
MAX_K = 1000


class Command(BaseCommand):
    help = (
        "Evaluate ALS against the popularity baseline on a public data set or a CSV of "
        "interactions (per-user 75/25 holdout, precision/recall/MAP/NDCG@k, coverage), or "
        "a blend profile on the shop's own simulated shoppers (--blend)."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--dataset", choices=sorted(DATASETS), help="A public data set.")
        source.add_argument(
            "--interactions",
            metavar="CSV",
            help="A CSV with columns user,item[,weight][,timestamp].",
        )
        source.add_argument(
            "--blend",
            metavar="PROFILE",
            help="Evaluate this blend profile against visual-only, ALS-only, popularity-only and "
            "covisitation-only "
            "on the shop's data, overall and per segment (cold items, new shoppers, regulars). "
            "A profile's name: 'default' is the profile of that name the migrations create, "
            "which may no longer be the one served (the admin's Blend profiles says which).",
        )
        parser.add_argument(
            "--with-experiment-events",
            action="store_true",
            help="With --blend: count the events of simulate_experiment too (left out by "
            "default: they reward the blend that was served).",
        )
        parser.add_argument("--k", type=int, default=10, help="Cut-off (default 10).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the split (default 0).")
        parser.add_argument("--json", action="store_true", help="Print JSON only.")
        parser.add_argument("--factors", type=int)
        parser.add_argument("--regularization", type=float)
        parser.add_argument("--alpha", type=float)
        parser.add_argument("--iterations", type=int)
        parser.add_argument(
            "--binary",
            action="store_true",
            help="Count every interaction as 1 (always on for MovieLens ratings).",
        )

    def handle(self, *args, **options):
        k = options["k"]
        if not 1 <= k <= MAX_K:
            raise CommandError(f"--k must be from 1 to {MAX_K}.")
        if options["seed"] < 0:
            raise CommandError("--seed must not be negative.")
        given = _als_options(options)
        blend = options["blend"]
        if blend is not None and (given or options["binary"]):
            raise CommandError(
                "--factors, --regularization, --alpha, --iterations and --binary apply to a "
                "data set or a CSV, not to --blend (the blend uses the shop's trained settings)."
            )
        try:
            als_parameters(**given)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["with_experiment_events"] and blend is None:
            raise CommandError("--with-experiment-events applies to --blend only.")
        if blend is not None:
            # An empty name is the default profile, as in the API's profile=.
            result = self.evaluate_blend(
                blend or None, k, options["seed"], options["with_experiment_events"]
            )
        else:
            result = self.evaluate_data(options)
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self.print_table(result, k)

    def evaluate_data(self, options):
        from recommendations import datasets
        from recommendations.evaluation import compare_with_popularity, train_test_split_per_user
        from recommendations.recommenders import ALSRecommender

        binary = options["binary"]
        if options["dataset"]:
            try:
                interactions = getattr(datasets, DATASETS[options["dataset"]])()
            except (ImportError, FileNotFoundError) as exc:
                raise CommandError(str(exc)) from exc
            binary = True  # ratings of 1 to 5 all mean "watched"
        else:
            path = Path(options["interactions"])
            if not path.is_file():
                raise CommandError(f"{path}: no such file.")
            try:
                interactions = datasets.load_interactions_csv(path)
            except (ValueError, UnicodeDecodeError) as exc:
                raise CommandError(f"Cannot read the interactions: {exc}") from exc
        user_items, users, items = interactions.to_user_items(binary=binary)
        model = ALSRecommender(random_state=options["seed"], **_als_options(options))
        train, test = train_test_split_per_user(user_items, 0.25, seed=options["seed"])
        try:
            figures = compare_with_popularity(model, train, test, k=options["k"])
        except ValueError as exc:
            raise CommandError(f"Cannot evaluate on {interactions.name}: {exc}") from exc
        return {
            "dataset": interactions.name,
            "users": int(len(users)),
            "items": int(len(items)),
            "interactions": int(user_items.nnz),
            "k": options["k"],
            "split": "per-user random 75/25",
            "seed": options["seed"],
            "parameters": {
                "factors": model.factors,
                "regularization": model.regularization,
                "alpha": model.alpha,
                "iterations": model.iterations,
                "binary": binary,
            },
            **figures,
        }

    def evaluate_blend(self, profile, k, seed, include_experiments):
        try:
            from recommendations.offline.blend_evaluation import evaluate_blend
        except ImportError as exc:
            raise CommandError(
                "Blend evaluation is not available in this installation "
                f"(recommendations.offline.blend_evaluation: {exc})."
            ) from exc
        try:
            return evaluate_blend(profile, k=k, seed=seed, include_experiments=include_experiments)
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc

    def print_table(self, result, k):
        head = [
            f"{key}: {result[key]}"
            for key in ("dataset", "users", "items", "interactions")
            if key in result
        ]
        if head:
            self.stdout.write(", ".join(head))
        names = [
            name
            for name, value in result.items()
            if isinstance(value, dict) and any(str(key).endswith(f"_at_{k}") for key in value)
        ]
        self.print_rows(result, names, k)
        for segment, figures in (result.get("segments") or {}).items():
            users = next(iter(figures.values()), {}).get("users", 0)
            self.stdout.write(f"\nSegment {segment} ({users} shoppers)")
            self.print_rows(figures, list(figures), k)
            against = (result.get("blend_against_best") or {}).get(segment)
            if against and against["ratio"] is not None:
                self.stdout.write(
                    f"blend / {against['best']}: {against['ratio']:.2f}x, NDCG difference "
                    f"{against['difference']:+.4f} (95% interval {against['low']:+.4f} to "
                    f"{against['high']:+.4f})"
                )

    def print_rows(self, result, names, k):
        columns = [f"precision_at_{k}", f"recall_at_{k}", f"map_at_{k}", f"ndcg_at_{k}", "coverage"]
        self.stdout.write(f"{'':<16}" + "".join(f"{c:>16}" for c in columns))
        for name in names:
            row = result[name]
            cells = "".join(
                f"{row[c]:>16.4f}" if isinstance(row.get(c), int | float) else f"{'—':>16}"
                for c in columns
            )
            self.stdout.write(f"{name:<16}{cells}")


def _als_options(options):
    """The ALS options given on the command line (the others keep their defaults)."""
    return {name: options[name] for name in PARAMETER_NAMES if options[name] is not None}
