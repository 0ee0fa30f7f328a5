"""The shopper-facing pages: "Find similar" and "Search by photo".

Both pages are thin: a form validates the input, :mod:`visualsearch.services.search` finds
and loads the products, and the templates reuse the shop's product cards. The templates
extend ``visualsearch/base.html``, which a shop overrides to fit its own layout.
"""

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from .conf import app_settings
from .forms import PhotoSearchForm, SimilarFiltersForm
from .services import search
from .uploads import preview_data_url


def _active_products():
    model = search.product_model()
    return model._default_manager.filter(**{app_settings.PRODUCT_FIELDS["active"]: True})


@require_http_methods(["GET", "HEAD"])
def similar(request, pk):
    """The product and the products that look most like it, with filters as a GET form."""
    product = get_object_or_404(_active_products(), pk=pk)
    form = SimilarFiltersForm(request.GET)
    results, not_indexed, status = [], False, 200
    if form.is_valid():
        try:
            hits = search.similar_to_product(
                product.pk, k=app_settings.RESULTS, filters=form.filters_for(product)
            )
        except search.NotIndexed:
            not_indexed = True
        else:
            results = search.hydrate(hits)
    else:
        status = 400
    context = {
        "product": product,
        "form": form,
        "results": results,
        "not_indexed": not_indexed,
        "filtered": any(form.data.get(name) for name in form.fields),
    }
    return render(request, "visualsearch/similar.html", context, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
def search_by_photo(request):
    """Search with an uploaded photo, or a part of it chosen with the crop box.

    GET shows the upload form. The photo is never written anywhere (unless
    ``VISUALSEARCH_STORE_UPLOADS`` is on): the results page shows it back as a ``data:``
    URL, and searching a part of it uploads that preview again with a box.
    """
    if request.method != "POST":
        return render(request, "visualsearch/photo.html", {"form": PhotoSearchForm()})
    form = PhotoSearchForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "visualsearch/photo.html", {"form": form}, status=400)
    photo = form.cleaned_data["photo"]
    [hits] = search.search_by_images(
        [photo.query], k=app_settings.RESULTS, filters=form.search_filters()
    )
    preview_url, preview_width, preview_height = preview_data_url(photo.image)
    scale = preview_width / photo.image.width
    context = {
        "form": form,
        "results": search.hydrate(hits),
        "searched": True,
        "preview_url": preview_url,
        "preview_width": preview_width,
        "preview_height": preview_height,
        # The box in preview pixels, to draw the current selection on the preview.
        "preview_box": ",".join(str(round(v * scale)) for v in photo.box) if photo.box else "",
    }
    return render(request, "visualsearch/photo.html", context)
