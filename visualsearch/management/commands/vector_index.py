from django.core.management.base import BaseCommand, CommandError

from visualsearch.conf import app_settings
from visualsearch.management.encoders import command_encoder
from visualsearch.services import sign_bits, vector_index


class Command(BaseCommand):
    help = (
        "Create (or --drop, or --rebuild) the HNSW index of an encoder's vectors. The default "
        "encoder's index comes with the migrations; after switching VISUALSEARCH_ENCODER, run "
        "`reindex --encoder NAME` (which also creates the index when it is missing) or this "
        "command. It also gives each category with more than VISUALSEARCH_EXACT_SEARCH_MAX_ROWS "
        "vectors its own index, after copying the products' categories onto their vectors "
        "(run it after bulk category changes), and gives the vectors their sign bits once "
        "there are more than that many. --list shows the existing indexes. Without an index, "
        "search still works with exact scans, only slower on large catalogues."
    )

    def add_arguments(self, parser):
        parser.add_argument("--encoder", help="Encoder name (default VISUALSEARCH_ENCODER).")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--drop", action="store_true", help="Drop the encoder's index.")
        action.add_argument("--rebuild", action="store_true", help="Drop and create it again.")
        action.add_argument(
            "--drop-stale",
            action="store_true",
            help="Drop indexes of this encoder built for another dimension.",
        )
        action.add_argument("--list", action="store_true", help="List the HNSW indexes.")
        parser.add_argument("--m", type=int, help="HNSW m (default VISUALSEARCH_HNSW_M, 16).")
        parser.add_argument(
            "--ef-construction", type=int, help="HNSW ef_construction (default 64)."
        )
        parser.add_argument(
            "--concurrently", action="store_true", help="Build without locking out writes."
        )

    def handle(self, *args, encoder=None, **options):
        if options["list"] and encoder is not None:
            command_encoder(encoder)  # an unknown name is an error here too
        if options["list"]:
            for ix in vector_index.list_indexes():
                scope = "" if ix["category"] is None else f", category {ix['category']}"
                self.stdout.write(
                    f"{ix['name']}: encoder {ix['encoder']}, {ix['dim']} dimensions{scope}, "
                    f"{ix['bytes'] / 2**20:.1f} MiB"
                )
            return
        enc = command_encoder(encoder)
        # Checked before anything is dropped: --rebuild with a bad value must not leave the
        # shop without its index.
        _check_build_options(options["m"], options["ef_construction"])
        if options["drop_stale"]:
            for name in vector_index.conflicting_indexes(enc.name, enc.dim):
                vector_index.drop_index_by_name(name)
                self.stdout.write(f"Dropped {name}.")
            return
        if options["drop"] or options["rebuild"]:
            dropped = vector_index.drop_index(enc.name, enc.dim)
            name = vector_index.index_name(enc.name, enc.dim)
            self.stdout.write(f"Dropped {name}." if dropped else f"There was no index {name}.")
            if options["drop"]:
                return
        # The bits before the graphs: their update re-inserts each row into every graph
        # already built (on a large catalogue, --rebuild writes them between drop and build).
        signed = sign_bits.ensure_signs(enc.name, enc.dim, enc.weights_hash)
        if signed:
            self.stdout.write(f"Wrote the sign bits of {signed} vectors.")
        name, created = vector_index.ensure_index(
            enc.name,
            enc.dim,
            m=options["m"],
            ef_construction=options["ef_construction"],
            concurrently=options["concurrently"],
        )
        self.stdout.write(f"Created {name}." if created else f"{name} already exists.")
        synced = vector_index.sync_copies(enc.name)
        if synced:
            self.stdout.write(f"Updated the category or price copied on {synced} vectors.")
        for name in vector_index.ensure_category_indexes(
            enc.name,
            enc.dim,
            m=options["m"],
            ef_construction=options["ef_construction"],
            concurrently=options["concurrently"],
        ):
            self.stdout.write(f"Created {name}.")


def _check_build_options(m, ef_construction):
    """pgvector's limits: m from 2 to 100, ef_construction from 4 to 1000 and at least 2 m."""
    if m is not None and not 2 <= m <= 100:
        raise CommandError("--m must be from 2 to 100.")
    if ef_construction is not None:
        if not 4 <= ef_construction <= 1000:
            raise CommandError("--ef-construction must be from 4 to 1000.")
        if ef_construction < 2 * (m or app_settings.HNSW_M):
            raise CommandError("--ef-construction must be at least twice --m.")
