import json

from django.core.management.base import BaseCommand, CommandError

from visualsearch.closeness import PRODUCT_PHOTOS_TOLD, calibrate


class Command(BaseCommand):
    help = (
        "Measure where VISUALSEARCH_CLOSE_MATCH_SCORE should sit for this catalogue: search "
        "shopper-style photos of the shop's own products and photos of no product, and print "
        "how many of each fall below each threshold, with a suggested one."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--photos", type=int, default=60, help="Photos of each kind (default 60)."
        )
        parser.add_argument("--seed", type=int, default=0, help="Draw of products and photos.")
        parser.add_argument("--json", action="store_true", help="One JSON object.")

    def handle(self, *args, photos, seed, **options):
        if not 1 <= photos <= 1000:
            raise CommandError("--photos must be between 1 and 1000.")
        if seed < 0:
            raise CommandError("--seed must not be negative.")
        try:
            report = calibrate(photos, seed)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report))
            return
        self.stdout.write("threshold  product photos below  photos of no product below")
        for threshold, row in report["share_below"].items():
            self.stdout.write(
                f"{float(threshold):9.2f}  {row['product_photos']:20.3f}  "
                f"{row['photos_of_no_product']:26.3f}"
            )
        suggested = report["suggested"]
        if suggested is None:
            self.stdout.write(
                f"No threshold tells at most {PRODUCT_PHOTOS_TOLD:.0%} of product photos: "
                "leave VISUALSEARCH_CLOSE_MATCH_SCORE at None."
            )
        else:
            self.stdout.write(
                f"Suggested: VISUALSEARCH_CLOSE_MATCH_SCORE = {suggested} (tells at most "
                f"{PRODUCT_PHOTOS_TOLD:.0%} of product photos)."
            )
