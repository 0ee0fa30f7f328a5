import json
import time

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from shop.demo import fashion_mnist
from shop.models import Product
from visualsearch import evaluation, search
from visualsearch.distortions import BASE_KIND, KINDS, display_copy, shopper_photo
from visualsearch.imaging import UnreadableImage, open_image
from visualsearch.management.encoders import command_encoder
from visualsearch.models import ProductEmbedding

K = 10
#: Side in pixels of the shop's product photo as displayed, the source of a shopper's photo.
PHOTO_SIZE = 224
BATCH = 64


def parse_kinds(text):
    """The kinds of shopper photo named in ``--kinds``; a clear error for unknown ones."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise CommandError(
            f"Unknown kind(s) of photo {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(KINDS)}."
        )
    return kinds


class Command(BaseCommand):
    help = (
        "Measure visual search on the indexed catalogue. Category precision: Fashion-MNIST "
        "TEST photos (never in the catalogue; stratified, seeded) are searched and their top "
        "10 compared with their category (precision@10, mAP@10, per category). Robustness: "
        "catalogue photos made into shopper's photos of each kind (visualsearch.distortions: "
        "standard, small on a textured surface, beside another product, occluded, low light, "
        "perspective, heavy JPEG) must find their own product in the top 10; products whose "
        "photos taught the projection invariance are left out. Searches go through the "
        "database and photo search's localisation, as the shop's do."
    )

    def add_arguments(self, parser):
        parser.add_argument("--queries", type=int, default=1000, help="Test photos (1000).")
        parser.add_argument(
            "--robust-queries",
            type=int,
            default=300,
            help="Shopper-style photos of catalogue products per kind (300).",
        )
        parser.add_argument(
            "--kinds",
            default=",".join(KINDS),
            help=f"Comma-separated kinds of shopper photo (default all: {','.join(KINDS)}).",
        )
        parser.add_argument(
            "--no-localise",
            action="store_true",
            help="Search every photo whole, without finding the products in it first.",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--encoder", help="Encoder name (default VISUALSEARCH_ENCODER).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, queries, robust_queries, seed, encoder=None, **options):
        if seed < 0:
            raise CommandError("--seed must not be negative.")
        if queries < 1 or robust_queries < 0:
            raise CommandError("--queries must be positive and --robust-queries not negative.")
        kinds = parse_kinds(options["kinds"])
        self.localise = not options["no_localise"]
        enc = command_encoder(encoder)
        indexed = ProductEmbedding.objects.filter(
            encoder=enc.name, weights_hash=enc.weights_hash, product__is_active=True
        )
        catalogue_size = indexed.count()
        if catalogue_size < K + 1:
            raise CommandError(
                f"Only {catalogue_size} active products are indexed with {enc.name}; load the "
                "demo catalogue and run `manage.py reindex --stale` first."
            )
        t0 = time.monotonic()
        category_of = dict(Product.objects.values_list("pk", "category__slug"))
        sizes = {}
        for slug in indexed.values_list("product__category__slug", flat=True):
            sizes[slug] = sizes.get(slug, 0) + 1

        try:
            split = fashion_mnist.load_split("test")
        except fashion_mnist.DatasetMissing as exc:
            raise CommandError(str(exc)) from exc
        picked = fashion_mnist.stratified_indices(split.labels, queries, seed=seed)
        slugs = [c[1] for c in fashion_mnist.CATEGORIES]
        names = {c[1]: c[0] for c in fashion_mnist.CATEGORIES}
        query_labels = np.array([slugs[split.labels[i]] for i in picked])
        images = [fashion_mnist.to_image(split.images[i]) for i in picked]
        result_ids = self.search(enc, images)
        result_labels = np.vectorize(lambda pk: category_of.get(pk, ""), otypes=[object])(
            result_ids
        ).astype(str)
        n_relevant = np.array([sizes.get(label, 0) for label in query_labels])
        report = {
            "encoder": enc.name,
            "catalogue_size": catalogue_size,
            "queries": len(picked),
            "localise": self.localise,
            "precision_at_10": evaluation.precision_at_k(query_labels, result_labels, K),
            "map_at_10": evaluation.map_at_k(query_labels, result_labels, K, n_relevant),
            "per_category": {
                names.get(label, label): figures
                for label, figures in evaluation.per_category(
                    query_labels, result_labels, K, n_relevant
                ).items()
            },
        }
        report.update(self.robustness(enc, indexed, robust_queries, seed, kinds))
        report["seconds"] = round(time.monotonic() - t0, 1)
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.print_report(report)

    def search(self, enc, images):
        """Top-10 product ids per image, ``(n, 10)``, through photo search as the shop runs
        it (re-ranking included); short rows padded with -1."""
        rows = []
        for start in range(0, len(images), BATCH):
            for hits in search.search_by_images(
                images[start : start + BATCH], k=K, encoder=enc.name, localise=self.localise
            ):
                rows.append([h.product_id for h in hits] + [-1] * (K - len(hits)))
        return np.asarray(rows, dtype=np.int64).reshape(-1, K)

    def robustness(self, enc, indexed, n, seed, kinds):
        """Robust hit@10 per kind of shopper photo; ``robust_hit_at_10`` is the standard
        kind's (the figure measured before the harder kinds existed)."""
        if n == 0:
            return {"robust_hit_at_10": None, "robust_queries": 0, "robust_per_kind": {}}
        rng = np.random.default_rng(seed)
        # Products whose shopper photos the projection learned from would flatter it.
        projection = enc.projection
        seen = set(projection.pair_ids) if projection is not None else set()
        all_pks = sorted(set(indexed.values_list("product_id", flat=True)))
        pks = np.asarray(sorted(set(all_pks) - seen), dtype=np.int64)
        per_kind = {}
        for kind in kinds:
            chosen = rng.choice(pks, size=min(n, len(pks)), replace=False)
            # The other product of a two-product photo may be any product but the target.
            others = rng.choice(np.asarray(all_pks), size=len(chosen))
            photos = self.display_photos(set(chosen.tolist()) | set(others.tolist()))
            images, ids = [], []
            for pk, other in zip(chosen.tolist(), others.tolist(), strict=True):
                if pk not in photos:
                    continue
                if other == pk or other not in photos:
                    other = next(o for o in photos if o != pk)
                images.append(shopper_photo(photos[pk], rng, kind, photos[other]).image)
                ids.append(pk)
            result_ids = self.search(enc, images)
            per_kind[kind] = {
                "hit_at_10": evaluation.robust_hit_at_k(np.asarray(ids), result_ids, K),
                "queries": len(ids),
            }
        base = per_kind.get(BASE_KIND, {})
        return {
            "robust_hit_at_10": base.get("hit_at_10"),
            "robust_queries": base.get("queries", 0),
            "robust_per_kind": per_kind,
            "robust_hit_at_10_all_kinds": float(
                np.mean([v["hit_at_10"] for v in per_kind.values()])
            ),
            "robust_excluded_training_products": len(seen),
        }

    def display_photos(self, pks):
        """``{pk: display-size photo}``: a shopper photographs the product itself, or the
        shop's page at display size, never the 28-pixel source file."""
        image_field = Product._meta.get_field("image")
        photos = {}
        for product in Product.objects.filter(pk__in=sorted(pks)).order_by("pk"):
            try:
                with image_field.storage.open(product.image.name, "rb") as fh:
                    photos[product.pk] = display_copy(open_image(fh.read()), PHOTO_SIZE)
            except (OSError, UnreadableImage, ValueError):
                continue
        return photos

    def print_report(self, report):
        self.stdout.write(
            f"Encoder {report['encoder']}, {report['catalogue_size']} indexed products, "
            f"{report['queries']} Fashion-MNIST test photos ({report['seconds']} s)"
        )
        self.stdout.write(f"  precision@10  {report['precision_at_10']:.3f}")
        self.stdout.write(f"  mAP@10        {report['map_at_10']:.3f}")
        for kind, figures in report["robust_per_kind"].items():
            self.stdout.write(
                f"  robust hit@10 {kind:<13} {figures['hit_at_10']:.3f} "
                f"({figures['queries']} shopper photos)"
            )
        if report["robust_per_kind"]:
            self.stdout.write(
                f"  ({report['robust_excluded_training_products']} products the projection "
                "learned from left out)"
            )
        self.stdout.write("  per category (n, precision@10, mAP@10):")
        for name, figures in report["per_category"].items():
            self.stdout.write(
                f"    {name:<12} {figures['n']:>5}  {figures['precision']:.3f}  "
                f"{figures['map']:.3f}"
            )
