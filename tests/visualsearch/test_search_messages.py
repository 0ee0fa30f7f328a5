"""A search outside any transaction is one message to the server (``BEGIN; probe; plan;
ROLLBACK``): nothing of it outlives the message, and a wrong guess of the plan or a
failed statement costs a second message, never a wrong answer or a broken connection."""

from decimal import Decimal

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from psycopg.pq import TransactionStatus

from visualsearch.search import Filters, executors, search_with_plan, similar_to_product
from visualsearch.search.planner import Plan, PlanKind

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = ("hnsw.ef_search", "hnsw.iterative_scan", "enable_sort", "enable_hashjoin")


def planner_settings():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join("current_setting(%s, true)" for _ in SETTINGS), list(SETTINGS)
        )
        return cursor.fetchone()


def idle():
    return connection.connection.info.transaction_status == TransactionStatus.IDLE


@pytest.fixture(autouse=True)
def no_remembered_plans():
    executors._last_plans.clear()
    yield
    executors._last_plans.clear()


def expected(catalogue, k, filters=None):
    """The same search inside a transaction: the savepoint path, a statement at a time."""
    with transaction.atomic():
        return [h.product_id for h in similar_to_product(catalogue[0].pk, k=k, filters=filters)]


@pytest.mark.parametrize("filters", [None, Filters(max_price=Decimal("40"))])
def test_one_message_leaves_nothing_behind_and_answers_as_a_transaction(catalogue, filters):
    before = planner_settings()
    want = expected(catalogue, 5, filters)
    with CaptureQueriesContext(connection) as first:
        hits = similar_to_product(catalogue[0].pk, k=5, filters=filters)
    assert [h.product_id for h in hits] == want
    with CaptureQueriesContext(connection) as second:
        again = similar_to_product(catalogue[0].pk, k=5, filters=filters)
    assert [h.product_id for h in again] == want
    # The first search of a shape learns its plan (probe, then plan); the next sends both
    # in one message.
    assert len(first) == 2 and len(second) == 1
    assert second.captured_queries[0]["sql"].startswith("BEGIN;")
    assert second.captured_queries[0]["sql"].rstrip().endswith("ROLLBACK")
    assert idle() and planner_settings() == before


def test_a_wrong_guess_costs_a_message_not_the_answer(catalogue):
    before = planner_settings()
    want = expected(catalogue, 5)
    result = search_with_plan(product_id=catalogue[0].pk, k=5)
    # Make every remembered plan wrong: the probe decides, and the right plan runs.
    wrong = (
        Plan(PlanKind.HNSW)
        if result.plan.kind != PlanKind.HNSW
        else Plan(PlanKind.EXACT_OVER_PRODUCTS)
    )
    for key in list(executors._last_plans):
        executors._last_plans[key] = wrong
    with CaptureQueriesContext(connection) as queries:
        again = search_with_plan(product_id=catalogue[0].pk, k=5)
    assert again.plan == result.plan and [h.product_id for h in again.hits] == want
    assert len(queries) == 2
    assert idle() and planner_settings() == before


def test_a_failed_message_is_rolled_back_and_the_connection_serves_on(catalogue):
    from visualsearch.models import ProductEmbedding

    before = planner_settings()
    similar_to_product(catalogue[0].pk, k=5)  # the next search is one message
    # Another session locks the vectors: the message's first statement times out, and
    # the server skips the rest of it, ROLLBACK included.
    other = psycopg.connect(**connection.get_connection_params())
    try:
        other.execute(f"LOCK TABLE {ProductEmbedding._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '50ms'")
        with pytest.raises(DatabaseError):
            similar_to_product(catalogue[0].pk, k=5)
        assert idle() and planner_settings() == before
    finally:
        other.rollback()
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert [h.product_id for h in similar_to_product(catalogue[0].pk, k=5)] == expected(
        catalogue, 5
    )


def test_inside_a_transaction_the_search_uses_a_savepoint(catalogue):
    before = planner_settings()
    with transaction.atomic():
        assert not executors.runs_own_transactions(connection)
        similar_to_product(catalogue[0].pk, k=5)
        assert planner_settings() == before  # rolled back to the savepoint
    assert executors.runs_own_transactions(connection)
