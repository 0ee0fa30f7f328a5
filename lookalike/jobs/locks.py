"""PostgreSQL advisory locks on job keys.

A running job holds a session-level advisory lock on its key in one namespace, so that a
job whose worker died (the lock vanished with its connection) can be told from one that is
merely slow. Starting a job is serialised with a transaction-level lock in another
namespace, so that starting one never waits for a running one: it is refused at once
("already running").
"""

import zlib

from django.db import connection

LOCK_NAMESPACE = 0x4C4B  # "LK": a running job's key; apart from other users' locks
ENQUEUE_NAMESPACE = 0x4C45  # "LE": serialises enqueues of one key, never held by a job


def lock_id(lock_key):
    # Advisory lock keys are two signed 32-bit integers.
    value = zlib.crc32(lock_key.encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def job_lock(lock_key):
    """The ``(namespace, id)`` of the lock a running job of ``lock_key`` holds."""
    return (LOCK_NAMESPACE, lock_id(lock_key))


def _select(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def acquire(lock):
    """Wait for ``lock`` and hold it until :func:`release` or the end of the session."""
    _select("SELECT pg_advisory_lock(%s, %s)", lock)


def try_acquire(lock) -> bool:
    return _select("SELECT pg_try_advisory_lock(%s, %s)", lock)


def release(lock):
    _select("SELECT pg_advisory_unlock(%s, %s)", lock)


def is_free(lock) -> bool:
    """Whether no session holds ``lock``: taken and given back at once to find out."""
    if not try_acquire(lock):
        return False
    release(lock)
    return True


def serialise_enqueues(lock_key):
    """Hold the enqueue lock of ``lock_key`` until the end of the current transaction."""
    _select("SELECT pg_advisory_xact_lock(%s, %s)", [ENQUEUE_NAMESPACE, lock_id(lock_key)])
