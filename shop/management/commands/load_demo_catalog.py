from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from shop.demo.catalog import load_demo_catalog
from shop.demo.fashion_mnist import DatasetMissing


class Command(BaseCommand):
    help = (
        "Load the demo catalogue: Fashion-MNIST train photos as products with generated "
        "titles, prices and stock. Safe to run again: products already loaded are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--size", type=int, default=6000, help="Number of products (max 60000)."
        )
        parser.add_argument("--path", help="Folder with the Fashion-MNIST IDX files.")

    def handle(self, *args, size, path, **options):
        # None: a bar on a terminal only, never redrawn into a log file or a pipe of JSON lines.
        bar = tqdm(
            total=size,
            desc="Products",
            unit="img",
            disable=True if options["verbosity"] < 1 else None,
        )
        try:
            created, skipped = load_demo_catalog(size=size, path=path, progress=bar.update)
        except (DatasetMissing, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(f"Demo catalogue: {created} products created, {skipped} already present.")
