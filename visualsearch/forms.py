"""Forms of the shopper-facing pages: result filters and the photo upload.

The forms only validate input and turn it into a :class:`~visualsearch.search.Filters`;
the search itself is done by the services, as in the API.
"""

from django import forms
from django.utils.translation import gettext_lazy as _

from lookalike.catalogue import get_adapter

from .search import Filters
from .uploads import BOX_TOO_LONG, MAX_BOX_LENGTH, InvalidUpload, parse_box, read_photo


class CategoryField(forms.ModelChoiceField):
    """The shop's categories, labelled by the adapter (:meth:`get_category_labels`), all
    read at once when the list is drawn."""

    _labels = None

    def label_from_instance(self, obj):
        if self._labels is None:
            self._labels = get_adapter().get_category_labels(self.queryset)
        return self._labels.get(obj.pk) or str(obj)


class FiltersForm(forms.Form):
    """Price range and stock, the filters shared by both result pages."""

    min_price = forms.DecimalField(
        label=_("Min price"), required=False, min_value=0, max_digits=10, decimal_places=2
    )
    max_price = forms.DecimalField(
        label=_("Max price"), required=False, min_value=0, max_digits=10, decimal_places=2
    )
    in_stock = forms.BooleanField(label=_("In stock only"), required=False)

    def clean(self):
        cleaned = super().clean()
        low, high = cleaned.get("min_price"), cleaned.get("max_price")
        if low is not None and high is not None and low > high:
            # On the maximum's field, so that the error is linked to an input (its
            # ``aria-describedby``) and the input is marked invalid, as a field's own are.
            self.add_error("max_price", _("The minimum price is above the maximum price."))
        return cleaned

    def filters(self, category_id=None, exclude_ids=()):
        data = self.cleaned_data
        return Filters(
            category_id=category_id,
            min_price=data.get("min_price"),
            max_price=data.get("max_price"),
            in_stock=bool(data.get("in_stock")),
            exclude_ids=tuple(exclude_ids),
        )


class SimilarFiltersForm(FiltersForm):
    """Filters of the "Find similar" page (a GET form: every field is optional)."""

    same_category = forms.BooleanField(label=_("Same category"), required=False)

    field_order = ["same_category", "min_price", "max_price", "in_stock"]

    @property
    def narrows(self) -> bool:
        """Whether the valid form sets any filter (a price, stock or the same category)."""
        return bool(self.cleaned_data.get("same_category")) or self.filters().narrows

    def filters_for(self, product):
        category_id = None
        if self.cleaned_data.get("same_category"):
            category_id = get_adapter().get_category_key(product)
        return self.filters(category_id=category_id)


#: Regions a page sends back to show again after a pick (more are never found).
MAX_KEPT_REGIONS = 8


class PhotoSearchForm(FiltersForm):
    """The "Search by photo" upload: the photo, an optional crop box and the filters."""

    image = forms.FileField(
        label=_("Photo"),
        error_messages={
            "required": _("Please choose a photo to search with."),
            "empty": _("The file is empty; please choose a photo."),
        },
    )
    box = forms.CharField(
        required=False,
        max_length=MAX_BOX_LENGTH,
        widget=forms.HiddenInput,
        error_messages={"max_length": BOX_TOO_LONG},
    )
    # The products the page had found, sent back with a pick ("x0,y0,x1,y1;..."), to offer
    # them again: searching one box finds no regions of its own.
    regions = forms.CharField(required=False, max_length=400, widget=forms.HiddenInput)
    # Degrees clockwise to turn the photo by first (the page's "Turn" buttons); read by
    # read_photo, which says why a value is refused.
    turn = forms.CharField(required=False, max_length=8, widget=forms.HiddenInput)
    category = CategoryField(
        queryset=None, required=False, empty_label=_("All categories"), label=_("Category")
    )

    field_order = ["image", "category", "min_price", "max_price", "in_stock", "box", "turn"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        categories = get_adapter().get_category_queryset()
        if categories is None:
            del self.fields["category"]
        else:
            self.fields["category"].queryset = categories

    def clean_image(self):
        # A form field keeps the last of several files under its name: a request with two
        # photos would be searched with one the shopper cannot tell. Refused, as the API does.
        if hasattr(self.files, "getlist") and len(self.files.getlist(self.add_prefix("image"))) > 1:
            raise forms.ValidationError(_("Send one photo at a time."), code="too_many_photos")
        return self.cleaned_data.get("image")

    def clean_regions(self):
        """The boxes sent back, those that parse (page state, not the shopper's words: a
        malformed one is dropped, not an error)."""
        boxes = []
        for text in self.cleaned_data.get("regions", "").split(";")[:MAX_KEPT_REGIONS]:
            try:
                box = parse_box(text)
            except InvalidUpload:
                continue
            if box is not None:
                boxes.append(box)
        return boxes

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("image")
        if upload is not None:
            try:
                cleaned["photo"] = read_photo(upload, cleaned.get("box"), cleaned.get("turn"))
            except InvalidUpload as exc:
                self.add_error(exc.field, forms.ValidationError(exc.message, code=exc.code))
        return cleaned

    def search_filters(self):
        category = self.cleaned_data.get("category")
        return self.filters(category_id=category.pk if category is not None else None)
