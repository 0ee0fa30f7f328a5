"""The reference shop's settings are safe by default, and `check --deploy` is clean with the
production environment the README documents."""

import os
import subprocess
import sys

import pytest
from django.test import RequestFactory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(code, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environ.pop("DATABASE_URL", None)
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'\n"
         + code],
        capture_output=True, text=True, cwd=ROOT, env=environ,
    )  # fmt: skip


def test_debug_is_off_unless_asked_for(tmp_path):
    code = "from django.conf import settings; print(settings.DEBUG)"
    assert run(code, LOOKALIKE_VAR_DIR=str(tmp_path)).stdout.strip() == "False"
    assert run(code, LOOKALIKE_VAR_DIR=str(tmp_path), DJANGO_DEBUG="1").stdout.strip() == "True"


def test_no_public_secret_key(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    external = run(code, DATABASE_URL="postgres://shop@db.example/shop")
    assert external.returncode != 0 and "DJANGO_SECRET_KEY is not set" in external.stderr
    # The embedded database of a development machine: a random key, kept, never shared.
    first = run(code, LOOKALIKE_VAR_DIR=str(tmp_path)).stdout.strip()
    assert len(first) >= 50 and run(code, LOOKALIKE_VAR_DIR=str(tmp_path)).stdout.strip() == first
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    other = run(code, LOOKALIKE_VAR_DIR=str(tmp_path / "other")).stdout.strip()
    assert other != first


def test_check_deploy_is_clean_with_the_production_environment():
    result = run(
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('check', '--deploy', '--fail-level', 'WARNING')\n",
        DATABASE_URL="postgres://shop@db.example/shop",
        DJANGO_SECRET_KEY="x7" * 30 + "-production-secret-key-for-this-test-only",
        DJANGO_ALLOWED_HOSTS="shop.example.com",
        DJANGO_HTTPS="1",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_error_reports_hide_connection_strings(settings):
    from django.views.debug import get_default_exception_reporter_filter

    request = RequestFactory().get("/")
    request.META["DATABASE_URL"] = "postgres://shop:hunter2@db/shop"
    request.META["CELERY_BROKER_URL"] = "redis://:hunter2@cache:6379/0"
    reporter = get_default_exception_reporter_filter()
    meta = reporter.get_safe_request_meta(request)
    assert "hunter2" not in str(meta)
    assert "hunter2" not in str(reporter.get_safe_settings().get("CELERY_BROKER_URL"))


@pytest.mark.django_db
def test_the_demo_admin_is_made_for_the_embedded_database_only(monkeypatch):
    import io

    from django.contrib.auth import get_user_model

    from shop.management.commands import prepare_demo

    monkeypatch.setattr(prepare_demo, "uses_embedded_database", lambda: False)
    out = io.StringIO()
    prepare_demo.Command(stdout=out).ensure_admin()
    assert not get_user_model().objects.filter(username="admin").exists()
    assert "createsuperuser" in out.getvalue()


@pytest.mark.django_db
def test_the_demo_admin_served_beyond_this_machine_has_a_private_password(
    monkeypatch, settings, tmp_path
):
    """On 127.0.0.1 the demo admin has the published password; served on every address
    (``HOST=0.0.0.0``) it gets a random one in a file only its owner reads, and the
    published one stops working."""
    import io

    from django.contrib.auth import get_user_model

    from shop.management.commands import prepare_demo

    monkeypatch.setattr(prepare_demo, "uses_embedded_database", lambda: True)
    settings.VAR_DIR = tmp_path
    username, published = prepare_demo.DEMO_ADMIN

    def ensure(site):
        out = io.StringIO()
        prepare_demo.Command(stdout=out).ensure_admin(site)
        return out.getvalue(), get_user_model().objects.get(username=username)

    said, admin = ensure("http://127.0.0.1:8000/")
    assert admin.check_password(published) and repr(published) in said
    said, admin = ensure("http://0.0.0.0:8000/")
    kept = tmp_path / "demo_admin_password"
    assert published not in said and str(kept) in said and "replaced" in said
    assert not admin.check_password(published) and admin.check_password(kept.read_text())
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    assert ensure("http://shop.example:8000/")[1].check_password(kept.read_text())
    # Back on loopback, it says where the password is, not the published one it no longer has.
    said, admin = ensure("http://127.0.0.1:8000/")
    assert repr(published) not in said and str(kept) in said
    # The file deleted: a new one, and the account takes it.
    kept.unlink()
    admin = ensure("http://0.0.0.0:8000/")[1]
    assert admin.check_password(kept.read_text())


def test_a_shop_on_a_shared_redis_names_its_own_keys_and_queue(tmp_path):
    """Two deployments on one Redis: each its key prefix and its Celery queue, so neither
    reads the other's cache nor takes the other's jobs."""
    code = (
        "from django.conf import settings; from config.celery import app; "
        "print(settings.CACHES['default']['KEY_PREFIX'], app.conf.task_default_queue)"
    )
    shared = {"REDIS_URL": "redis://127.0.0.1:6379/1", "LOOKALIKE_VAR_DIR": str(tmp_path)}
    assert run(code, **shared).stdout.split() == ["lookalike"]  # no prefix: the defaults
    named = run(code, **shared, DJANGO_CACHE_KEY_PREFIX="shop-b", CELERY_QUEUE="shop-b")
    assert named.stdout.split() == ["shop-b", "shop-b"], named.stderr[-2000:]


def test_photos_are_left_to_a_web_server_when_asked(tmp_path):
    code = (
        "import django; django.setup(); from django.urls import resolve, Resolver404\n"
        "try:\n    resolve('/media/products/x.png'); print('served')\n"
        "except Resolver404:\n    print('not served')"
    )
    assert run(code, LOOKALIKE_VAR_DIR=str(tmp_path)).stdout.strip() == "served"
    off = run(code, LOOKALIKE_VAR_DIR=str(tmp_path), DJANGO_SERVE_MEDIA="0")
    assert off.stdout.strip() == "not served", off.stderr[-2000:]


@pytest.mark.django_db
def test_prepare_demo_secures_the_admin_before_its_long_steps(monkeypatch, settings, tmp_path):
    """The shop is served while prepare_demo runs: the account is made safe first."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from shop.management.commands import prepare_demo

    monkeypatch.setattr(prepare_demo, "uses_embedded_database", lambda: True)
    settings.VAR_DIR = tmp_path
    real = prepare_demo.call_command

    def until_the_catalogue(name, *args, **kwargs):
        if name == "load_demo_catalog":
            raise RuntimeError("the long steps")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(prepare_demo, "call_command", until_the_catalogue)
    with pytest.raises(RuntimeError, match="the long steps"):
        call_command("prepare_demo", "--site-url", "http://0.0.0.0:8000/")
    admin = get_user_model().objects.get(username=prepare_demo.DEMO_ADMIN[0])
    assert admin.check_password((tmp_path / "demo_admin_password").read_text())
