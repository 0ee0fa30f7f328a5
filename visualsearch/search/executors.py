"""Carrying out a search: the probe, then the chosen plan's statement, on one cursor.

:func:`execute` runs the plan's named statement (:class:`~.queries.SearchQueries`) and
returns ``(product_id, distance)`` rows, best first. A plan that comes up short of ``k``
(an HNSW walk stopped by ``hnsw.max_scan_tuples``, candidates of the copies that failed the
product table: stale copies, stock, inactive products) is followed by the exact plan over
the product table, which alone can tell whether ``k`` exist.

Inside a caller's transaction a search runs in a savepoint that it rolls back
(:func:`probe` and :func:`execute`, one statement a round trip). Otherwise it needs no
savepoint and no separate ``BEGIN`` and ``ROLLBACK``: :func:`search_in_own_transactions`
sends ``BEGIN; <probe>; <plan>; ROLLBACK`` as one message, guessing the plan from the last
search with the same filter, and sends another message only when the probe chose another
plan or the plan came up short. Each message ends its own transaction, so the planner
settings, applied locally, never outlive it.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import psycopg
from django.db.backends.postgresql.psycopg_any import is_psycopg3
from psycopg.pq import TransactionStatus

from .planner import PlanKind, Probe

__all__ = ["execute", "probe", "runs_own_transactions", "search_in_own_transactions"]

#: Entries kept in :data:`_last_plans` before it starts again.
_MAX_REMEMBERED_PLANS = 1024

#: ``{(encoder, dim, filter without exclusions, settings, category graph): Plan}``: the plan
#: the last search of that shape took in this process, which the next one guesses.
_last_plans = {}


def probe(cursor, queries, settings, category_index) -> Probe:
    """Run the probe statement; the planner settings stay applied for the transaction."""
    cursor.execute(*queries.probe(settings, category_index))
    names = [column.name for column in cursor.description]
    return _probe(queries, names, cursor.fetchone())


def _probe(queries, names, values) -> Probe:
    row = dict(zip(names, values, strict=True))
    return Probe(
        indexed=row["indexed"],
        category_indexed=row["category_indexed"],
        matching=row["matching"],
        on_copies=queries.copies is not None,
        has_vector=row.get("has_vector"),
        signed=row["signed"],
        near=row["near"],
    )


def _fetch(cursor, statement):
    cursor.execute(*statement)
    return cursor.fetchall()


def statement(queries, plan, k):
    """The ``(sql, params)`` of ``plan``: its statement in :class:`~.queries.SearchQueries`,
    named as the plan, with the plan's own argument where it has one."""
    if plan.kind == PlanKind.CATEGORY_HNSW:
        return queries.category_hnsw(k, plan.category)
    if plan.kind == PlanKind.SIGN_BITS:
        return queries.sign_bits(k, plan.rerank)
    return getattr(queries, plan.kind.value)(k)


def execute(cursor, queries, plan, k):
    """Carry out ``plan``; ``(rows, fell_back)``, ``fell_back`` when it came up short and
    the exact plan over the product table answered instead."""
    rows = _fetch(cursor, statement(queries, plan, k))
    if len(rows) < k and plan.kind != PlanKind.EXACT_OVER_PRODUCTS:
        return _fetch(cursor, queries.exact_over_products(k)), True
    return rows, False


def runs_own_transactions(connection) -> bool:
    """Whether a search on ``connection`` may open and end its transactions itself, several
    statements a message: outside any transaction, on psycopg 3 with client-side binding
    (Django's default; server-side binding sends one statement a message)."""
    return (
        connection.vendor == "postgresql"
        and is_psycopg3
        and not connection.in_atomic_block
        and not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding")
        and connection.get_autocommit()
    )


def search_in_own_transactions(connection, queries, settings, category_index, k, decide):
    """Probe, plan and execute in messages of the form ``BEGIN; ...; ROLLBACK``, one when
    the plan guessed from the last search of the same shape is the one ``decide(probe)``
    picks (it may raise, :class:`~.filters.NotIndexed`); the guess never changes the plan,
    only whether its rows came with the probe.

    Returns
    -------
    (probe, plan, rows, fell_back)
    """
    key = (
        queries.target.encoder,
        queries.target.dim,
        replace(queries.filters, exclude_ids=()),
        settings,
        category_index,
    )
    guess = _last_plans.get(key)
    apply = queries.settings(settings, category_index)
    with connection.cursor() as cursor:
        try:
            first = [queries.probe(settings, category_index)]
            if guess is not None:
                first.append(statement(queries, guess, k))
            results = _message(cursor, first)
            names, rows = results[0]
            found = _probe(queries, names, rows[0])
            plan = decide(found)
            if len(_last_plans) >= _MAX_REMEMBERED_PLANS:
                _last_plans.clear()
            _last_plans[key] = plan
            if plan == guess:
                rows = results[1][1]
            else:
                rows = _message(cursor, [apply, statement(queries, plan, k)])[1][1]
            if len(rows) < k and plan.kind != PlanKind.EXACT_OVER_PRODUCTS:
                rows = _message(cursor, [apply, queries.exact_over_products(k)])[1][1]
                return found, plan, rows, True
            return found, plan, rows, False
        except BaseException:
            _end_transaction(connection)
            raise


def _message(cursor, statements):
    """Run ``statements`` in one transaction of their own, sent as one message; the
    ``(column names, rows)`` of each."""
    sql = "; ".join(["BEGIN", *(sql for sql, _ in statements), "ROLLBACK"])
    cursor.execute(sql, [param for _, params in statements for param in params])
    results = []
    while True:
        if cursor.description is not None:
            results.append(([column.name for column in cursor.description], cursor.fetchall()))
        if not cursor.nextset():
            return results


def _end_transaction(connection):
    """Roll back what a failed message left open (the server skips the statements after
    the one that failed, ``ROLLBACK`` included). A connection too broken to roll back is
    left to Django, which drops it; the search's own error is the one raised."""
    raw = connection.connection
    if raw is None or raw.closed or raw.info.transaction_status == TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error), raw.cursor() as cursor:
        cursor.execute("ROLLBACK")
