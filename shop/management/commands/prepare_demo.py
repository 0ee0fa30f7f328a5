import ipaddress
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.core.management.base import BaseCommand

from config.keys import stored_secret
from recommendations.offline.simulation import MAX_SHOPPERS
from shop.demo.fashion_mnist import TRAIN_PHOTOS

DEMO_ADMIN = ("admin", "lookalike-admin")


class Command(BaseCommand):
    help = (
        "Everything `make demo` needs before the server starts: migrations, the demo "
        "catalogue, its visual index, simulated shoppers, a trained recommender and an "
        "admin account. Steps already done are skipped, so a second run is quick."
    )

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=6000, help="Demo catalogue size.")
        parser.add_argument("--shoppers", type=int, default=2000, help="Simulated shoppers.")
        parser.add_argument(
            "--site-url",
            default="http://127.0.0.1:8000/",
            help="Where the shop will be served, for the admin link printed at the end.",
        )

    def handle(self, *args, size, shoppers, site_url="http://127.0.0.1:8000/", **options):
        # Before anything runs, and whether or not a step would be skipped as done.
        if not 1 <= size <= TRAIN_PHOTOS:
            raise CommandError(f"--size must be between 1 and {TRAIN_PHOTOS}.")
        if not 1 <= shoppers <= MAX_SHOPPERS:
            raise CommandError(f"--shoppers must be from 1 to {MAX_SHOPPERS:,}.")
        call_command("migrate", interactive=False, verbosity=0)
        # First: the shop is served meanwhile, and beyond this machine the published
        # password must not open the admin while the steps below run (minutes).
        self.ensure_admin(site_url, quiet=True)
        call_command("load_demo_catalog", size=size, stdout=self.stdout)
        self.index_catalogue()
        Event = apps.get_model("recommendations", "Event")
        RecommenderModel = apps.get_model("recommendations", "RecommenderModel")
        if not Event.objects.filter(simulated=True).exists():
            call_command("simulate_shoppers", users=shoppers, seed=0, days=30, stdout=self.stdout)
        if not RecommenderModel.objects.filter(is_active=True).exists():
            call_command("train_recommender", stdout=self.stdout)
        self.ensure_admin(site_url)

    def index_catalogue(self):
        """Embed the catalogue; on first start also fit the encoder's catalogue projection.

        The projection is learned from the catalogue's own categories and shopper-style
        copies of some of its photos in the same pass that embeds it; afterwards only
        products without an up-to-date vector are embedded, so a second run does nothing.
        A projection from an older version, without the invariance stage, is refitted. A
        reindex job already queued or running does the work instead.
        """
        from lookalike.jobs.services import active_job
        from visualsearch import indexing
        from visualsearch.encoders import get_encoder
        from visualsearch.indexing.service import LOCK_KEY

        running = active_job(LOCK_KEY)
        if running is not None:
            # A shop restarted during a reindex (or served twice): the job brings the index
            # up to date, and the shop must start all the same, not fail on its lock.
            self.stdout.write(
                f"The reindex job #{running.pk} is {running.status}: it brings the visual "
                "index up to date; not indexing here."
            )
            return
        encoder = get_encoder()
        if indexing.supports_projection(encoder) and _needs_fit(encoder.projection):
            call_command("reindex", "--all", "--fit-projection", stdout=self.stdout)
        else:
            call_command("reindex", "--stale", stdout=self.stdout)

    def ensure_admin(self, site_url="http://127.0.0.1:8000/", quiet=False):
        """The well-known demo account, on the embedded demo database only: a shop served
        from its own database (``DATABASE_URL``) creates its admins with ``createsuperuser``."""
        if not uses_embedded_database():
            self.stdout.write(
                "No demo admin account: the database is not the embedded demo database. "
                "Create one with `manage.py createsuperuser`."
            )
            return
        username, password = DEMO_ADMIN
        # Served beyond this machine (HOST=0.0.0.0), a published password would be anyone's
        # way into the admin: the account gets a random one, kept in a file only its owner
        # reads (made again if deleted), in place of whatever it had.
        path = settings.VAR_DIR / "demo_admin_password"
        beyond = not _loopback(urlsplit(site_url).hostname)
        if beyond:
            password = stored_secret(path, length=16)
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            User.objects.create_superuser(username, "admin@example.com", password)
            self.stdout.write("Created the demo admin account.")
        elif beyond and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write("The demo admin's password was replaced by the one in the file.")
        # Served on loopback after a run beyond it, the account keeps the file's password.
        private = beyond or (user is not None and not user.check_password(password))
        said = f"password in {path} (readable by you only)" if private else f"password {password!r}"
        if quiet:
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: {site_url.rstrip('/')}/admin/  user {username!r}, {said} (demo only)"
            )
        )


def _loopback(host) -> bool:
    """Whether ``host`` (a URL's) is this machine only."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uses_embedded_database() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "config.dbbackend"


def _needs_fit(projection) -> bool:
    """No projection yet, or one without the re-ranking stage that the settings ask for."""
    from visualsearch.conf import app_settings

    if projection is None:
        return True
    return not projection.reranks and app_settings.PROJECTION_PAIRS > 0
