"""Querysets as SQL, for the few statements the ORM cannot say.

The plugins' vector searches and index bookkeeping are hand-written SQL (pgvector's
distance ordering under planner settings, partial HNSW indexes matched by literal
predicates), while *which* products count comes from the catalogue adapter as querysets.
:func:`as_sql` turns such a queryset into a sub-query with its parameters, so that one
statement does both and the adapter's filters run where the data is.
"""

from django.db import connections


def as_sql(queryset, *fields) -> tuple[str, list]:
    """``(sql, params)`` of ``queryset.values_list(*fields)``, its ordering dropped.

    The SQL uses the ``%s`` placeholders of Django's cursors; splice it into a statement
    and its parameters into the statement's, in the same position.
    """
    values = queryset.order_by().values_list(*fields)
    sql, params = values.query.get_compiler(connection=connections[values.db]).as_sql()
    return sql, list(params)
