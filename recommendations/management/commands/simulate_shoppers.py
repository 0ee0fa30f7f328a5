from django.core.management.base import BaseCommand, CommandError

from recommendations.offline.simulation import MAX_SHOPPERS, simulate_shoppers


class Command(BaseCommand):
    help = (
        "Simulate shoppers with known tastes (visual clusters, categories, budget, noise) "
        "browsing, clicking similar items, carting and buying over the last D days. "
        "Events are marked simulated; re-running with the same seed replaces that seed's "
        "events. The ground truth is written as JSON under var/simulation/."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=1000, help="Shoppers (default 1000).")
        parser.add_argument("--seed", type=int, default=0, help="Random seed (default 0).")
        parser.add_argument("--days", type=int, default=30, help="Days simulated (default 30).")

    def handle(self, *args, users, seed, days, **options):
        from tqdm import tqdm

        # Bounded: the simulation holds every shopper and day in memory.
        if not 1 <= users <= MAX_SHOPPERS:
            raise CommandError(f"--users must be from 1 to {MAX_SHOPPERS:,}.")
        if not 1 <= days <= 3650:
            raise CommandError("--days must be from 1 to 3650.")
        if seed < 0:
            raise CommandError("--seed must not be negative.")
        show = options.get("verbosity", 1) > 0
        with tqdm(
            total=users, unit="shopper", disable=None if show else True, file=self.stderr
        ) as bar:
            try:
                result = simulate_shoppers(users=users, seed=seed, days=days, progress=bar.update)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        kinds = ", ".join(f"{n} {kind}" for kind, n in result.counts.items())
        replaced = ""
        if result.deleted:
            replaced = f" (replaced {result.deleted} earlier events of seed {seed})"
        self.stdout.write(
            self.style.SUCCESS(
                f"Simulated {result.users} shoppers, {result.events} events: {kinds}{replaced}."
            )
        )
        self.stdout.write(
            f"Tastes over {result.n_clusters} {result.cluster_source} clusters; "
            f"ground truth in {result.truth_path}."
        )
