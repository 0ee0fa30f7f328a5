from django.core.management.base import BaseCommand, CommandError

from lookalike.jobs.services import LockBusy
from visualsearch import indexing
from visualsearch.encoders import available_encoders
from visualsearch.management.encoders import command_encoder


class Command(BaseCommand):
    help = (
        "Embed product images into the visual-search index. --stale (the default) embeds "
        "products with no vector, a changed image or other encoder weights; --all re-embeds "
        "everything; --ids the given products. Each batch is committed, so an interrupted "
        "run is finished by running --stale. Unreadable images are recorded and skipped. "
        "--fit-projection (with --all) also learns the encoder's catalogue projection while "
        "embedding it once: invariance to shopper photos from distorted copies of some "
        "products' photos (--pairs), and the catalogue's own categories."
    )

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--stale", action="store_const", const="stale", dest="mode")
        mode.add_argument("--all", action="store_const", const="all", dest="mode")
        # Keys as text: the adapter parses them (integers, UUIDs...).
        mode.add_argument("--ids", nargs="+", metavar="ID", help="Product ids.")
        parser.add_argument(
            "--encoder",
            help=f"Encoder name (default VISUALSEARCH_ENCODER); one of "
            f"{', '.join(available_encoders())}.",
        )
        parser.add_argument("--batch-size", type=int, help="Images per committed batch.")
        parser.add_argument(
            "--fit-projection",
            action="store_true",
            help="Embed every product once, fit the encoder's category projection on the "
            "catalogue's categories, save it and store the projected vectors (implies --all).",
        )
        parser.add_argument(
            "--gamma",
            type=float,
            help="With --fit-projection: weight of the category similarity in the stored "
            "vectors (default 0.5).",
        )
        parser.add_argument(
            "--pairs",
            type=int,
            help="With --fit-projection: products photographed again as a shopper would, to "
            "learn what such photos change (default VISUALSEARCH_PROJECTION_PAIRS, 1000; "
            "0 for none).",
        )
        parser.add_argument(
            "--no-verify",
            action="store_true",
            help="With --stale, trust image names and skip re-hashing every image file.",
        )

    def handle(self, *args, mode=None, ids=None, encoder=None, batch_size=None, **options):
        mode = _mode(mode, ids, batch_size, options)
        encoder = command_encoder(encoder)
        bar = _ProgressBar(disable=options["verbosity"] == 0, stderr=self.stderr)
        try:
            counts = _reindex(mode, ids, encoder, batch_size, bar, options)
        except (ValueError, LockBusy) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        for line in _report(counts, indexing.index_status(encoder)["failed"]):
            self.stdout.write(line)


def _mode(mode, ids, batch_size, options):
    """The reindex mode the options ask for; ``CommandError`` for options that conflict."""
    fit = options["fit_projection"]
    if fit and (ids or mode == "stale"):
        raise CommandError("--fit-projection re-embeds everything: use it with --all.")
    if options["gamma"] is not None and not fit:
        raise CommandError("--gamma only applies with --fit-projection.")
    # Checked before the catalogue is embedded, not by the fit minutes later.
    if options["gamma"] is not None and not 0 <= options["gamma"] <= 100:
        raise CommandError("--gamma must be a number from 0 to 100.")
    if options["pairs"] is not None and not fit:
        raise CommandError("--pairs only applies with --fit-projection.")
    if options["pairs"] is not None and options["pairs"] < 0:
        raise CommandError("--pairs must not be negative.")
    if batch_size is not None and batch_size < 1:
        raise CommandError("--batch-size must be at least 1.")
    return "ids" if ids else (mode or ("all" if fit else "stale"))


def _reindex(mode, ids, encoder, batch_size, bar, options):
    def error(pk, reason):
        bar.write(f"product {pk}: {reason}")

    if options["fit_projection"]:
        return indexing.reindex_with_projection(
            encoder=encoder,
            batch_size=batch_size,
            progress=bar.update,
            error=error,
            gamma=options["gamma"],
            pairs=options["pairs"],
        )
    return indexing.reindex(
        mode,
        ids=ids,
        encoder=encoder,
        batch_size=batch_size,
        progress=bar.update,
        error=error,
        verify_checksums=False if options["no_verify"] else None,
    )


def _report(counts, failing):
    """The lines the command prints about a finished reindex; ``failing``: the products
    whose image failed in this run or an earlier one and has not changed since."""
    yield (
        f"{counts['embedded']} embedded, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, {counts['removed']} removed "
        f"({counts['encoder']}, {counts['mode']}, {counts['seconds']:.1f} s)."
    )
    if failing > counts["failed"]:
        yield (
            f"{failing} product(s) in all have an image that failed, in this run or an "
            "earlier one: they are tried again when their image changes, or with --ids "
            "(the admin's Visual index lists them)."
        )
    if counts.get("no_image"):
        shown = ", ".join(str(pk) for pk in counts["no_image_ids"])
        more = ", ..." if counts["no_image"] > len(counts["no_image_ids"]) else ""
        yield (
            f"{counts['no_image']} product(s) have no image, so no vector (not counted above): "
            f"{shown}{more}."
        )
    if counts.get("projection"):
        learned = (
            f", invariance learned from shopper-style photos of {counts['pairs']} products"
            if counts.get("pairs")
            else ""
        )
        yield (
            f"Fitted the projection on {counts['fitted_on']} products in "
            f"{counts['categories']} categories{learned}: {counts['projection']}."
        )
    if counts.get("index_created"):
        yield f"Created the HNSW index {counts['index_created']}."


class _ProgressBar:
    """tqdm, created when the total is known; errors are printed above it."""

    def __init__(self, disable, stderr):
        self.disable = disable
        self.stderr = stderr
        self.bar = None

    def update(self, done, total=None, message=None):
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=total, unit="img", disable=True if self.disable else None, file=self.stderr
            )
        self.bar.update(done - self.bar.n)

    def write(self, text):
        from tqdm import tqdm

        if self.disable:
            self.stderr.write(text)
        else:
            tqdm.write(text, file=self.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
