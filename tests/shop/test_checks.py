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
