"""What the index holds against the catalogue, read from the database: the products whose
vector is missing or outdated (:func:`stale_products`), the admin's counts
(:func:`index_status`), the products an "all" run re-embeds, those without an image, why
one product has no vector (:func:`why_unindexed`), and the vectors of products gone
(:func:`remove_orphans`)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.utils.translation import gettext, ngettext

from lookalike.catalogue import get_adapter

from .. import products
from ..conf import app_settings
from ..models import IndexFailure, ProductEmbedding
from ..services.vectors import vectors_changed
from .images import checksum, read_image_bytes

#: The condition "the product has an image" on the catalogue rows ``p(pk, image)``.
HAS_IMAGE = "p.image IS NOT NULL AND p.image <> ''"


def resolve_encoder(encoder):
    """The encoder ``encoder`` names (default ``VISUALSEARCH_ENCODER``), or ``encoder``
    itself when it is one."""
    from ..encoders import Encoder, get_encoder

    if isinstance(encoder, Encoder):
        return encoder
    return get_encoder(encoder)


def _tables():
    qn = connection.ops.quote_name
    return {
        "emb": qn(ProductEmbedding._meta.db_table),
        "fail": qn(IndexFailure._meta.db_table),
    }


def _state_rows(encoder_name):
    """``(pk, image name, weights hash, emb image name, emb checksum, failure image name,
    failure checksum)`` for every indexed product with an image, in key order."""
    t = _tables()
    catalogue, params = products.catalogue_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.pk, p.image, e.weights_hash, e.image_name, "
            "e.image_checksum, f.image_name, f.image_checksum "
            f"FROM ({catalogue}) p(pk, image) "
            f"LEFT JOIN {t['emb']} e ON e.product_id = p.pk AND e.encoder = %s "
            f"LEFT JOIN {t['fail']} f ON f.product_id = p.pk AND f.encoder = %s "
            f"WHERE {HAS_IMAGE} ORDER BY p.pk",
            [*params, encoder_name, encoder_name],
        )
        return cursor.fetchall()


def stale_products(encoder=None, *, verify_checksums=None) -> list[int]:
    """Ids of the products whose vector for ``encoder`` is missing or outdated.

    Outdated means: computed by other weights, from an image of another name, or (with
    ``verify_checksums``, default ``VISUALSEARCH_VERIFY_CHECKSUMS``) from other bytes than
    the file holds now. Products whose current image already failed are not listed.
    """
    enc = resolve_encoder(encoder)
    if verify_checksums is None:
        verify_checksums = app_settings.VERIFY_CHECKSUMS
    current = enc.weights_hash
    stale = []
    for pk, name, weights, e_name, e_sum, f_name, f_sum in _state_rows(enc.name):
        if e_name is None and f_name is None:
            stale.append(pk)
        elif e_name is not None and (weights != current or e_name != name):
            stale.append(pk)
        elif f_name is not None and f_name != name:
            stale.append(pk)
        elif verify_checksums:
            try:
                digest = checksum(read_image_bytes(name))
            except OSError:
                digest = ""  # unreadable now: stale if it was embedded, known if it failed
            if digest != (e_sum if e_name is not None else f_sum):
                stale.append(pk)
    return stale


def index_status(encoder=None) -> dict:
    """Counts for the admin: ``indexed + stale + missing + failed == total`` indexed
    products with an image, and ``no_image``, the products with none (never embedded).
    Reads the database only (no image files)."""
    enc = resolve_encoder(encoder)
    t = _tables()
    catalogue, params = products.catalogue_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE {HAS_IMAGE}), "
            f"count(*) FILTER (WHERE {HAS_IMAGE} AND e.id IS NOT NULL AND e.weights_hash = %s "
            "  AND e.image_name = p.image), "
            f"count(*) FILTER (WHERE {HAS_IMAGE} AND e.id IS NOT NULL AND (e.weights_hash <> %s "
            "  OR e.image_name <> p.image)), "
            f"count(*) FILTER (WHERE {HAS_IMAGE} AND e.id IS NULL AND f.image_name = p.image), "
            "count(*) FILTER (WHERE p.image IS NULL OR p.image = '') "
            f"FROM ({catalogue}) p(pk, image) "
            f"LEFT JOIN {t['emb']} e ON e.product_id = p.pk AND e.encoder = %s "
            f"LEFT JOIN {t['fail']} f ON f.product_id = p.pk AND f.encoder = %s",
            [enc.weights_hash, enc.weights_hash, *params, enc.name, enc.name],
        )
        total, indexed, stale, failed, no_image = cursor.fetchone()
    return {
        "indexed": indexed,
        "stale": stale,
        "missing": total - indexed - stale - failed,
        "failed": failed,
        "total": total,
        "no_image": no_image,
    }


def all_products(encoder_name, started_before) -> list:
    """Indexed products with an image whose vector (or failure) predates ``started_before``."""
    t = _tables()
    catalogue, params = products.catalogue_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.pk FROM ({catalogue}) p(pk, image) "
            f"LEFT JOIN {t['emb']} e ON e.product_id = p.pk AND e.encoder = %s "
            f"LEFT JOIN {t['fail']} f ON f.product_id = p.pk AND f.encoder = %s "
            f"WHERE {HAS_IMAGE} "
            "AND (e.id IS NULL OR e.computed_at < %s) "
            "AND (f.id IS NULL OR f.failed_at < %s) "
            "ORDER BY p.pk",
            [*params, encoder_name, encoder_name, started_before, started_before],
        )
        return [row[0] for row in cursor.fetchall()]


def without_image(limit=20) -> tuple[int, list]:
    """``(count, first keys)`` of the indexed products that have no image to embed: skipped
    by every reindex, and reported by it, so that a shop sees what it is missing."""
    catalogue, params = products.catalogue_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) OVER (), p.pk FROM ({catalogue}) p(pk, image) "
            "WHERE p.image IS NULL OR p.image = '' ORDER BY p.pk LIMIT %s",
            [*params, limit],
        )
        rows = cursor.fetchall()
    return (rows[0][0] if rows else 0), [pk for _, pk in rows]


@dataclass(frozen=True)
class Unindexed:
    """Why a product has no vector: ``kind`` is ``"no_image"`` (nothing to embed until it
    gets a photo), ``"failed"`` (its photo could not be read or embedded: ``reason``
    says why, for the shop's staff; it is retried once the image changes) or
    ``"pending"`` (no reindex has reached it yet)."""

    kind: str
    reason: str = ""


def why_unindexed(product_id, encoder_name=None) -> Unindexed:
    """Why product ``product_id`` has no vector of the encoder ``encoder_name`` (default
    ``VISUALSEARCH_ENCODER``), for the messages of the pages, the API and the commands: a
    shopper told to come back later for a product without a photo would wait forever."""
    name = products.image_names([product_id]).get(product_id)
    if not name:
        return Unindexed("no_image")
    reason = (
        IndexFailure.objects.filter(
            product_id=product_id, encoder=encoder_name or app_settings.ENCODER, image_name=name
        )
        .values_list("reason", flat=True)
        .first()
    )
    return Unindexed("pending") if reason is None else Unindexed("failed", reason)


def check_ids(ids) -> list:
    """The product keys ``ids`` parsed and sorted; ``ValueError`` names any that no indexed
    product has."""
    adapter = get_adapter()
    try:
        wanted = sorted({adapter.parse_pk(i) for i in ids or ()})
    except ValueError as exc:
        raise ValueError(
            gettext("Product ids must be keys of products: %(error)s") % {"error": exc}
        ) from None
    if not wanted:
        raise ValueError(gettext("No product ids given."))
    found = set(adapter.get_indexed_queryset().filter(pk__in=wanted).values_list("pk", flat=True))
    missing = [i for i in wanted if i not in found]
    if missing:
        ids = ", ".join(map(str, missing))
        raise ValueError(
            ngettext("No product with id %(ids)s.", "No products with ids %(ids)s.", len(missing))
            % {"ids": ids}
        )
    return wanted


def remove_orphans(encoder_name) -> int:
    """Forget vectors and failures of products that no longer have an image, or that the
    adapter no longer indexes; the number of vectors removed."""
    t = _tables()
    catalogue, params = products.catalogue_sql()
    removed = 0
    with connection.cursor() as cursor:
        for table in (t["emb"], t["fail"]):
            cursor.execute(
                f"DELETE FROM {table} x WHERE x.encoder = %s AND NOT EXISTS ("
                f"SELECT 1 FROM ({catalogue}) p(pk, image) "
                f"WHERE p.pk = x.product_id AND {HAS_IMAGE})",
                [encoder_name, *params],
            )
            removed += cursor.rowcount if table == t["emb"] else 0
    if removed:
        vectors_changed()
    return removed
