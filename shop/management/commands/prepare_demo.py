from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

DEMO_ADMIN = ("admin", "lookalike-admin")


class Command(BaseCommand):
    help = (
        "Everything `make demo` needs before the server starts: migrations, the demo "
        "catalogue, an admin account. Steps already done are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, default=6000, help="Demo catalogue size.")

    def handle(self, *args, size, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("load_demo_catalog", size=size, stdout=self.stdout)
        self.ensure_admin()

    def ensure_admin(self):
        username, password = DEMO_ADMIN
        User = get_user_model()
        if not User.objects.filter(username=username).exists():
            User.objects.create_superuser(username, "admin@example.com", password)
            self.stdout.write("Created the demo admin account.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: http://127.0.0.1:8000/admin/  user {username!r}, "
                f"password {password!r} (demo only)"
            )
        )
