"""The shopper-facing pages: "Find similar" and "Search by photo".

Both pages are thin: a form validates the input, :mod:`visualsearch.search` finds
and loads the products, and the templates show them with the shop's card template
(``LOOKALIKE_CARD_TEMPLATE``). The templates extend ``visualsearch/base.html``, which
extends the host's ``LOOKALIKE_BASE_TEMPLATE``.
"""

from functools import wraps

from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from lookalike.catalogue import get_adapter
from lookalike.conf import app_settings as lookalike_settings

from . import search
from .concurrency import Busy, photo_search_slot
from .conf import app_settings
from .forms import PhotoSearchForm, SimilarFiltersForm
from .indexing.state import why_unindexed
from .previews import preview_data_url, scale_box
from .products import stands_for
from .throttling import photo_search_wait
from .upload_handlers import photo_upload
from .uploads import InvalidUpload, read_photo


def render_page(request, template, context, status=200):
    """Render a plugin page inside the host's layout (``LOOKALIKE_BASE_TEMPLATE``)."""
    context = {
        "lookalike_base_template": lookalike_settings.BASE_TEMPLATE,
        "card_template": lookalike_settings.CARD_TEMPLATE,
        **context,
    }
    return render(request, template, context, status=status)


def throttle_posts(view):
    """Count each POST to ``view`` against the client's photo-search allowance, which the
    API's photo search shares (:mod:`visualsearch.throttling`), and answer a readable 429
    with ``Retry-After`` once it is spent. The check comes before the photo is decoded, so
    a refused request costs no decoding and no encoder time."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "POST":
            wait = photo_search_wait(request)
            if wait is not None:
                response = render_page(
                    request, "visualsearch/throttled.html", {"retry_after": wait}, status=429
                )
                response["Retry-After"] = str(wait)
                return response
        return view(request, *args, **kwargs)

    return wrapper


def shown_product(key):
    """The product of ``key`` (parsed by the adapter) if the adapter shows it; else 404, or
    :class:`StandsFor` when another product stands for it (an Oscar variant's parent)."""
    adapter = get_adapter()
    try:
        return get_object_or_404(adapter.annotate(adapter.get_queryset()), pk=key)
    except Http404:
        other = stands_for(key)
        if other is None:
            raise
        raise StandsFor(other) from None


class StandsFor(Exception):
    """The product asked for is searched as another one, whose key is ``args[0]``."""


def _key(pk):
    """The product key spelled by the URL's ``pk``; 404 when it spells none."""
    try:
        return get_adapter().parse_pk(pk)
    except ValueError:
        raise Http404(gettext("No such product.")) from None


def _unfiltered(key):
    """``(product, results, not_indexed)`` of a page without filters, the product loaded
    with its look-alikes in one query (:func:`~visualsearch.search.hydrate_with`);
    ``product`` is ``None`` when it was not found that way. The search comes first, so an
    unknown key costs the search's probe (one round trip) before its 404."""
    try:
        product, results = search.remembered.show_current(
            lambda: search.remembered.similar_to_product(key, k=app_settings.RESULTS),
            lambda hits: search.hydrate_with(key, hits),
            results=lambda shown: shown[1],
        )
    except search.NotIndexed:
        return None, [], True
    return product, results, False


def _filtered(product, form):
    """``(results, not_indexed)`` of ``product`` under the valid ``form``'s filters."""
    filters = form.filters_for(product)
    try:
        results = search.remembered.show_current(
            lambda: search.remembered.similar_to_product(
                product.pk, k=app_settings.RESULTS, filters=filters
            ),
            lambda hits: search.hydrate(hits, filters),
        )
    except search.NotIndexed:
        return [], True
    return results, False


def _same_query_on(request, key, permanent=False):
    """A redirect to the "find similar" page of ``key`` with the request's filters."""
    query = request.GET.urlencode()
    target = reverse("visualsearch:similar", args=[key])
    return redirect(f"{target}?{query}" if query else target, permanent=permanent)


@require_http_methods(["GET", "HEAD"])
def similar(request, pk):
    """The product and the products that look most like it, with filters as a GET form.
    Another spelling of the key ("01", a UUID in capitals) is redirected to the canonical
    one, so that a product's page has one address."""
    key = _key(pk)
    if str(key) != pk:
        return _same_query_on(request, key, permanent=True)
    form = SimilarFiltersForm(request.GET)
    valid = form.is_valid()
    product, results, not_indexed = None, [], False
    if valid and not form.narrows:
        product, results, not_indexed = _unfiltered(key)
    if product is None:
        try:
            product = shown_product(key)  # or 404
        except StandsFor as moved:
            return _same_query_on(request, moved.args[0])
        if valid and not not_indexed:
            results, not_indexed = _filtered(product, form)
    status = 200 if valid else 400
    if not_indexed:
        # Whether coming back later can help: not for a product without a photo.
        not_indexed = why_unindexed(product.pk)
    context = {
        "product": product,
        "form": form,
        "results": results,
        # The same product's answer is shown again and again: its cards are reused.
        "reuse_cards": True,
        "not_indexed": not_indexed,
        # "Clear" where a filter is in effect, or where a refused value can be cleared.
        "filtered": form.narrows if valid else any(form.data.get(n) for n in form.fields),
    }
    return render_page(request, "visualsearch/similar.html", context, status=status)


#: Where a found product sits in the photo, by the third of the width and of the height
#: its centre is in: its button's name says it ("Search product 1 (left)"), for a shopper
#: who cannot see the numbered boxes.
PLACES = {
    (0, 0): _("top left"),
    (1, 0): _("top"),
    (2, 0): _("top right"),
    (0, 1): _("left"),
    (1, 1): _("middle"),
    (2, 1): _("right"),
    (0, 2): _("bottom left"),
    (1, 2): _("bottom"),
    (2, 2): _("bottom right"),
}


def _place(x0, y0, x1, y1, width, height):
    column = min(int(3 * (x0 + x1) / 2 / width), 2)
    row = min(int(3 * (y0 + y1) / 2 / height), 2)
    return PLACES[(column, row)]


def _regions_on_preview(found, query_size, width, height, kept=(), searched=None):
    """The products found in the photo, for the shopper to pick one, when there are two or
    more (one product is what the fused results already show): each box in preview pixels
    (what the crop box submits) and as percentages of the preview (to draw it at any
    size). ``kept``, the boxes the page had found before a product was picked (searching
    a box finds no regions), are shown again; ``searched``, the box searched now, is marked.
    """
    boxes = [scale_box(region.box, query_size, (width, height)) for region in found.regions]
    if len(boxes) < 2:
        boxes = [b for b in kept if b[2] <= width and b[3] <= height]
    if len(boxes) < 2:
        return []
    # Numbered as they lie, left to right: the same product keeps its number from one
    # search to the next, whatever order they were found in.
    boxes = sorted(boxes, key=lambda b: (b[0], b[1]))
    return [
        {
            "number": number,
            "place": _place(x0, y0, x1, y1, width, height),
            "box": f"{x0},{y0},{x1},{y1}",
            "searched": searched is not None and tuple(searched) == (x0, y0, x1, y1),
            "left": round(100 * x0 / width, 2),
            "top": round(100 * y0 / height, 2),
            "width": round(100 * (x1 - x0) / width, 2),
            "height": round(100 * (y1 - y0) / height, 2),
        }
        for number, (x0, y0, x1, y1) in enumerate(boxes, start=1)
    ]


@photo_upload
@require_http_methods(["GET", "HEAD", "POST"])
@throttle_posts
def search_by_photo(request):
    """Search with an uploaded photo, or a part of it chosen with the crop box.

    GET shows the upload form. The photo is never written anywhere (unless
    ``VISUALSEARCH_STORE_UPLOADS`` is on): the results page shows it back as a ``data:``
    URL, and searching a part of it uploads that preview again with a box. The body is
    read by :class:`~visualsearch.upload_handlers.PhotoUploadHandler` (``@photo_upload``):
    in memory, and not at all past ``VISUALSEARCH_MAX_UPLOAD_BYTES``.
    """
    if request.method != "POST":
        return render_page(request, "visualsearch/photo.html", {"form": PhotoSearchForm()})
    if getattr(request, "upload_refused", None):
        form = PhotoSearchForm({}, {})
        form.is_valid()
        form.errors.pop("image", None)
        form.add_error("image", request.upload_refused)
        return render_page(request, "visualsearch/photo.html", {"form": form}, status=400)
    try:
        # One of the process's few photo-search slots (visualsearch.concurrency).
        with photo_search_slot():
            form = PhotoSearchForm(request.POST, request.FILES)
            found = None
            if form.is_valid():
                photo = form.cleaned_data["photo"]
                # A shopper's own box has said where the product is; otherwise find it.
                [found] = search.search_photos(
                    [photo.query],
                    k=app_settings.RESULTS,
                    filters=form.search_filters(),
                    localise=photo.box is None,
                )
            else:
                photo = _photo_kept(request, form)
                if photo is None:
                    page = {"form": form}
                    return render_page(request, "visualsearch/photo.html", page, status=400)
            preview = preview_data_url(photo.image)
    except Busy as exc:
        response = render_page(
            request, "visualsearch/busy.html", {"retry_after": exc.retry_after}, status=503
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
    context = _results_context(request, form, photo, found, preview)
    return render_page(
        request, "visualsearch/photo.html", context, status=200 if found is not None else 400
    )


def _photo_kept(request, form):
    """The photo of a search from the results page refused for its area, turn or filters
    (a minimum price above the maximum), read whole: the page shows it again with the
    errors, rather than the empty upload form that would make the shopper pick it again.
    ``None`` for a first upload, or a photo that cannot be read. Not read twice: the form
    has read it whole when only its filters were refused."""
    if request.POST.get("refined") != "1" or "image" in form.errors:
        return None
    read = form.cleaned_data.get("photo")
    if read is not None and read.box is None:
        return read
    try:
        return read_photo(form.files["image"])
    except (InvalidUpload, KeyError):
        return None


def _results_context(request, form, photo, found, preview):
    """The results page's context: ``found`` (``None`` when the search was refused and the
    photo is shown again with the form's errors)."""
    preview_url, preview_width, preview_height = preview
    scale = preview_width / photo.size[0]  # the box is in pixels of the full-size photo
    # Boxes sent back are in the preview's pixels: the photo searched is that preview.
    same = photo.size == (preview_width, preview_height) and found is not None
    kept = form.cleaned_data.get("regions", ()) if same else ()
    turn = str(form.cleaned_data.get("turn") or "").strip() if found is not None else ""
    return {
        "form": form,
        "results": search.hydrate(found.hits) if found is not None else [],
        "refused": found is None,
        "close_match": found.close_match if found is not None else None,
        # A photo's scores are its own: nothing to reuse.
        "reuse_cards": False,
        "searched": True,
        # Searched again from the results page (the crop box, a product found, the whole).
        "refined": request.POST.get("refined") == "1",
        # A turn's search: the focus stays on the turn button, which says it turned.
        "turned": turn if turn in ("90", "180", "270") else "",
        "regions": _regions_on_preview(
            found, photo.query.size, preview_width, preview_height, kept=kept, searched=photo.box
        )
        if found is not None
        else [],
        "preview_url": preview_url,
        "preview_width": preview_width,
        "preview_height": preview_height,
        # The box in preview pixels, to draw the current selection on the preview.
        "preview_box": ",".join(str(round(v * scale)) for v in photo.box) if photo.box else "",
    }
