"""Querysets as SQL, for the few statements the ORM cannot say.

The plugins' vector searches and index bookkeeping are hand-written SQL (pgvector's
distance ordering under planner settings, partial HNSW indexes matched by literal
predicates), while *which* products count comes from the catalogue adapter as querysets.
:func:`as_sql` turns such a queryset into a sub-query with its parameters, so that one
statement does both and the adapter's filters run where the data is.
"""

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.db.models.sql.where import WhereNode


def as_sql(queryset, *fields) -> tuple[str, list]:
    """``(sql, params)`` of ``queryset.values_list(*fields)``, its ordering dropped.

    The SQL uses the ``%s`` placeholders of Django's cursors; splice it into a statement
    and its parameters into the statement's, in the same position. A queryset that can
    match nothing (an adapter's ``none()``: Django compiles no SQL for it) becomes a
    statement of the same columns that returns no row.
    """
    values = queryset.order_by().values_list(*fields)
    try:
        sql, params = _compile(values)
    except EmptyResultSet:
        empty = values.all()
        empty.query.where = WhereNode()
        sql, params = _compile(empty.filter(RawSQL("FALSE", [], output_field=BooleanField())))
    return sql, list(params)


def _compile(queryset):
    return queryset.query.get_compiler(connection=connections[queryset.db]).as_sql()
