from django.core.management.base import BaseCommand, CommandError

from recommendations.conf import app_settings
from recommendations.services.als_parameters import PARAMETER_NAMES, als_parameters
from recommendations.services.training import NoInteractions, train

#: The longest training window, in days (a century).
MAX_DAYS = 36_500


def check_options(options):
    """The ALS options and the window, refused before the events are read."""
    try:
        als_parameters(**{name: options.get(name) for name in PARAMETER_NAMES})
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    days = options.get("days")
    if days is not None and not 0 <= days <= MAX_DAYS:
        raise CommandError(f"--days must be from 0 (every event) to {MAX_DAYS}.")


#: Below this many shoppers scored, the held-out figures are said to mean little.
FEW_SHOPPERS = 30


class Command(BaseCommand):
    help = (
        "Train the ALS recommender on the shop's events, evaluate it on a holdout against "
        "popularity, store it as a new version and make it the active one."
    )

    def add_arguments(self, parser):
        defaults = app_settings.ALS_PARAMETERS
        parser.add_argument("--factors", type=int, help=f"Latent factors ({defaults['factors']}).")
        parser.add_argument(
            "--regularization", type=float, help=f"L2 penalty ({defaults['regularization']})."
        )
        parser.add_argument(
            "--alpha", type=float, help=f"Confidence scale of event weights ({defaults['alpha']})."
        )
        parser.add_argument(
            "--iterations", type=int, help=f"ALS sweeps ({defaults['iterations']})."
        )
        parser.add_argument(
            "--days", type=int, help="Only events of the last N days (0: every event)."
        )
        parser.add_argument(
            "--no-simulated", action="store_true", help="Leave simulated events out."
        )
        parser.add_argument(
            "--no-evaluate", action="store_true", help="Skip the holdout evaluation."
        )
        parser.add_argument(
            "--no-activate", action="store_true", help="Store the model without serving it."
        )

    def handle(self, *args, **options):
        from tqdm import tqdm

        check_options(options)
        show = options.get("verbosity", 1) > 0
        with tqdm(total=1, unit="it", disable=None if show else True, file=self.stderr) as bar:

            def progress(done, total, message):
                bar.total = total
                bar.set_description(message)
                bar.update(done - bar.n)

            try:
                row = train(
                    factors=options["factors"],
                    regularization=options["regularization"],
                    alpha=options["alpha"],
                    iterations=options["iterations"],
                    days=options["days"],
                    include_simulated=not options["no_simulated"],
                    evaluate=not options["no_evaluate"],
                    activate=not options["no_activate"],
                    progress=progress,
                )
            except NoInteractions as exc:
                raise CommandError(str(exc)) from exc
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        state = "active" if row.is_active else "not active"
        self.stdout.write(
            self.style.SUCCESS(
                f"Trained recommender v{row.version} ({state}) in {row.training_seconds:.1f}s: "
                f"{row.n_users} shoppers, {row.n_items} products, "
                f"{row.n_interactions} interactions from {row.n_events} events."
            )
        )
        figures = row.evaluation or {}
        if "model" in figures:
            k = figures.get("k", 10)
            for name in ("model", "popularity"):
                f = figures[name]
                self.stdout.write(
                    f"  {name:<10} precision@{k} {f[f'precision_at_{k}']:.3f}  "
                    f"ndcg@{k} {f[f'ndcg_at_{k}']:.3f}  coverage {f['coverage']:.3f}"
                )
            scored = figures.get("test_users")
            if scored is not None and scored < FEW_SHOPPERS:
                self.stdout.write(
                    self.style.WARNING(
                        f"  Scored on {scored} shopper(s) only: too few for these figures to "
                        "mean much. A shop tried from one machine counts as few shoppers: "
                        "one address's anonymous sessions weigh as "
                        "RECOMMENDATIONS_MAX_CLIENT_SHOPPERS (1) in training, and it starts "
                        "at most RECOMMENDATIONS_CLIENT_SESSION_RATE of them."
                    )
                )
        elif "skipped" in figures:
            self.stdout.write(f"  Evaluation skipped: {figures['skipped']}")
