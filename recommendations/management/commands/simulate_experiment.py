import json

from django.core.management.base import BaseCommand, CommandError

from recommendations.experiments.report import experiment_report
from recommendations.experiments.services import ExperimentError
from recommendations.experiments.simulate import simulate_experiment
from recommendations.models import Experiment


class Command(BaseCommand):
    help = (
        "Run simulated shoppers (from simulate_shoppers, with their true tastes) against a "
        "running experiment: each is served their arm's widgets, clicks by their true "
        "preferences, and may cart and buy. Impressions and events are marked simulated. "
        "Prints the experiment's figures per arm over its simulated strips."
    )

    def add_arguments(self, parser):
        parser.add_argument("experiment", help="The running experiment's name.")
        parser.add_argument("--shoppers", type=int, default=500, help="Shoppers (default 500).")
        parser.add_argument("--visits", type=int, default=2, help="Visits each (default 2).")
        parser.add_argument(
            "--seed", type=int, default=0, help="The simulate_shoppers seed (default 0)."
        )
        parser.add_argument(
            "--widgets",
            default="for-you",
            help="Comma-separated strips served per visit: for-you (default; the strip the "
            "offline evaluation scores), similar-items.",
        )
        parser.add_argument(
            "--click-model",
            default="intent",
            choices=["intent", "appeal"],
            help="How true tastes decide clicks (default intent; see "
            "recommendations.experiments.simulate).",
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, experiment, shoppers, visits, seed, widgets, click_model, **options):
        from tqdm import tqdm

        found = Experiment.objects.filter(name=experiment).first()
        if found is None:
            names = ", ".join(Experiment.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"Unknown experiment {experiment!r}; experiments: {names}.")
        show = options.get("verbosity", 1) > 0 and not options["json"]
        with tqdm(
            total=shoppers, unit="shopper", disable=None if show else True, file=self.stderr
        ) as bar:
            try:
                done = simulate_experiment(
                    found,
                    shoppers,
                    seed=seed,
                    visits=visits,
                    widgets=[w.strip() for w in widgets.split(",") if w.strip()],
                    click_model=click_model,
                    progress=bar.update,
                )
            except ExperimentError as exc:
                raise CommandError(str(exc)) from exc
        report = experiment_report(found, simulated=True)
        if options["json"]:
            self.stdout.write(json.dumps({"simulation": done, "report": report}, indent=2))
            return
        self.stdout.write(
            f"{done['shoppers']} shoppers, {done['strips']} strips, {done['clicks']} clicks, "
            f"{done['purchases']} purchases."
        )
        for arm in report["arms"]:
            ctr, conv = arm["ctr"], arm["conversion"]
            self.stdout.write(
                f"{arm['arm']} ({arm['profile']}): {arm['strips']} strips, "
                f"CTR {ctr['value']:.3f} [{ctr['low']:.3f}, {ctr['high']:.3f}], "
                f"conversion {conv['value']:.4f} [{conv['low']:.4f}, {conv['high']:.4f}], "
                f"{arm.get('verdict', '')}"
            )
        self.stdout.write(f"Leader: {report['leader'] or 'none yet'}.")
