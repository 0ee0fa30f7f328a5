import json
import os

from django.core.management.base import BaseCommand, CommandError

from lookalike.catalogue import get_adapter
from visualsearch import search
from visualsearch.conf import app_settings
from visualsearch.imaging import WORKING_SIZE, UnreadableImage, open_image
from visualsearch.indexing.state import why_unindexed
from visualsearch.management.encoders import command_encoder

#: Images embedded together; bounds memory for long lists of paths.
IMAGE_BATCH = 32


class Command(BaseCommand):
    help = (
        "Print the products most similar to a product (--product) or to image files "
        "(--image, any number: embedded in batches in one process). With --json, one JSON "
        'line per query, in order: {"query": ..., "results": [{"id": ..., "score": ...}]}.'
    )

    def add_arguments(self, parser):
        query = parser.add_mutually_exclusive_group(required=True)
        query.add_argument("--product", metavar="ID", help="A product's id (integer or UUID).")
        query.add_argument("--image", nargs="+", metavar="PATH")
        parser.add_argument("--k", type=int, default=10, help="Results per query (default 10).")
        parser.add_argument("--encoder", help="Encoder name (default VISUALSEARCH_ENCODER).")
        parser.add_argument("--json", action="store_true", help="JSON lines output.")

    def handle(self, *args, product=None, image=None, k=10, encoder=None, **options):
        if not 1 <= k <= search.MAX_K:
            raise CommandError(f"--k must be between 1 and {search.MAX_K}.")
        encoder = command_encoder(encoder).name
        if product is not None:
            adapter = get_adapter()
            try:
                product = adapter.parse_pk(product)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            if not adapter.get_indexed_queryset().filter(pk=product).exists():
                raise CommandError(f"No product with id {product}.")
            try:
                hits = search.similar_to_product(product, k=k, encoder=encoder)
            except search.NotIndexed as exc:
                raise CommandError(_unindexed_message(exc, product, encoder)) from exc
            self.emit(str(product), hits, options["json"])
            return
        # Read every image first: a bad path fails before any search is printed.
        for path in image:  # every path first, so that a typo stops the run before any work
            if os.path.isdir(path):
                raise CommandError(f"{path} is a folder, not an image.")
            if not os.path.isfile(path):
                raise CommandError(f"Image not found: {path}")
        # Decoded a batch at a time, reduced to what the encoder reads and refused past the
        # photo search's pixel limit: memory stays bounded however many or large the files.
        for start in range(0, len(image), IMAGE_BATCH):
            batch = []
            for path in image[start : start + IMAGE_BATCH]:
                try:
                    batch.append(
                        open_image(path, min_side=WORKING_SIZE, max_pixels=app_settings.MAX_PIXELS)
                    )
                except UnreadableImage as exc:
                    raise CommandError(str(exc)) from exc
            results = search.search_by_images(batch, k=k, encoder=encoder)
            for path, hits in zip(image[start : start + IMAGE_BATCH], results, strict=True):
                self.emit(path, hits, options["json"])

    def emit(self, query, hits, as_json):
        if as_json:
            line = {
                "query": query,
                "results": [
                    {
                        "id": h.product_id if isinstance(h.product_id, int) else str(h.product_id),
                        "score": round(h.score, 6),
                    }
                    for h in hits
                ],
            }
            self.stdout.write(json.dumps(line))
            return
        self.stdout.write(f"{query}:")
        for product, score in search.hydrate(hits):
            title = get_adapter().get_title(product)
            self.stdout.write(f"  {product.pk!s:>8}  {score:.4f}  {title}")


def _unindexed_message(exc, product, encoder):
    """What to do about a product without a vector: nothing a reindex can fix for one
    without a photo, or with one that failed (the reason is the reindex's)."""
    why = why_unindexed(product, encoder)
    if why.kind == "no_image":
        return f"Product {product} has no image, so it has no vector."
    if why.kind == "failed":
        return f"Product {product}'s image could not be embedded: {why.reason}"
    return f"{exc} Run `manage.py reindex --stale`."
