import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.db import connection

from visualsearch.checks import check_pgvector


@pytest.mark.django_db
def test_database_has_pgvector_and_pg_trgm():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension")
        names = {row[0] for row in cursor.fetchall()}
    assert {"vector", "pg_trgm"} <= names
    assert check_pgvector(None, databases=["default"]) == []


@pytest.mark.django_db
def test_check_reports_a_server_without_pgvector(monkeypatch):
    real_cursor = connection.cursor

    class NoVector:
        def __init__(self, cursor):
            self.cursor = cursor

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.cursor.close()

        def execute(self, sql, params=None):
            # Ask the real server about an extension that does not exist.
            self.cursor.execute(sql.replace("'vector'", "'no_such_extension'"), params)

        def fetchone(self):
            return self.cursor.fetchone()

    monkeypatch.setattr(connection, "cursor", lambda: NoVector(real_cursor()))
    errors = check_pgvector(None, databases=["default"])
    assert [e.id for e in errors] == ["visualsearch.E004"]
    assert "no pgvector" in errors[0].msg
    # Any host's remedy, not the reference project's (its DATABASE_URL, embedded server).
    assert errors[0].hint.startswith("Install pgvector 0.8 or newer on that server.")
    assert "CREATE EXTENSION vector" in errors[0].hint
    assert "DATABASE_URL" not in errors[0].hint


def test_check_without_database_passes_and_does_not_import_torch():
    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE']='config.settings';"
        "import django; django.setup();"
        "from django.core.management import call_command; call_command('check');"
        "assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert run_checks() == []


def test_dead_processes_are_pruned_from_the_embedded_servers_list(tmp_path):
    import json

    from config.embedded import prune_dead_handles

    handles = tmp_path / ".handle_pids.json"
    dead = 2**22 + 12345  # above Linux's default pid_max: never a live process
    handles.write_text(json.dumps([os.getpid(), dead]))
    assert prune_dead_handles(tmp_path) == [dead]
    assert json.loads(handles.read_text()) == [os.getpid()]
    assert prune_dead_handles(tmp_path) == []


GB = 1024 * 1024  # in kB


def test_embedded_server_settings_scale_with_memory_within_bounds():
    from config.embedded import server_settings

    assert server_settings({}, memory_kb=24 * GB)["shared_buffers"] == "6144MB"
    assert server_settings({}, memory_kb=24 * GB)["maintenance_work_mem"] == "1536MB"
    small = server_settings({}, memory_kb=GB // 4)
    assert (small["shared_buffers"], small["maintenance_work_mem"]) == ("128MB", "64MB")
    big = server_settings({}, memory_kb=256 * GB)
    assert (big["shared_buffers"], big["maintenance_work_mem"]) == ("8192MB", "2048MB")
    chosen = server_settings(
        {"LOOKALIKE_DB_SHARED_BUFFERS": "2GB", "LOOKALIKE_DB_MAINTENANCE_WORK_MEM": "300 mb"},
        memory_kb=24 * GB,
    )
    assert (chosen["shared_buffers"], chosen["maintenance_work_mem"]) == ("2048MB", "300MB")


@pytest.mark.parametrize("value", ["lots", "4", "0GB", "-1GB", "4 GiB"])
def test_embedded_server_settings_refuse_a_bad_size(value):
    from django.core.exceptions import ImproperlyConfigured

    from config.embedded import server_settings

    with pytest.raises(ImproperlyConfigured, match="LOOKALIKE_DB_SHARED_BUFFERS"):
        server_settings({"LOOKALIKE_DB_SHARED_BUFFERS": value}, memory_kb=24 * GB)


def test_embedded_server_settings_are_included_once_and_rewritten(tmp_path):
    from config.embedded import SETTINGS_FILE, write_server_settings

    (tmp_path / "postgresql.conf").write_text("max_connections = 100\n")
    write_server_settings(tmp_path, {"LOOKALIKE_DB_SHARED_BUFFERS": "1GB"}, memory_kb=24 * GB)
    write_server_settings(tmp_path, {"LOOKALIKE_DB_SHARED_BUFFERS": "3GB"}, memory_kb=24 * GB)
    main = (tmp_path / "postgresql.conf").read_text()
    assert main.startswith("max_connections = 100\n")
    assert main.count(f"include_if_exists = '{SETTINGS_FILE}'") == 1
    written = (tmp_path / SETTINGS_FILE).read_text()
    assert "shared_buffers = 3072MB\n" in written
    assert "shared_preload_libraries = 'pg_prewarm'\n" in written
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.django_db
def test_embedded_server_runs_with_the_written_settings():
    """The running server read ``lookalike.conf`` (an external DATABASE_URL server has its
    own settings, so only the embedded one is checked)."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("external server: its settings are its administrator's")
    from config.embedded import SETTINGS_FILE, pgdata_dir

    written = dict(
        line.split(" = ", 1)
        for line in (pgdata_dir() / SETTINGS_FILE).read_text().splitlines()
        if " = " in line
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('shared_preload_libraries')")
        assert "pg_prewarm" in cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_bytes(current_setting('shared_buffers'))")
        assert cursor.fetchone()[0] == int(written["shared_buffers"].removesuffix("MB")) * 2**20
