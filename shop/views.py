from django.contrib import messages
from django.contrib.auth import login
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.translation import get_language
from django.views.decorators.http import require_POST

from lookalike.catalogue import CATALOGUE
from recommendations.events import record_view

from .forms import AddToCartForm, CartQuantityForm, SearchForm, SignupForm
from .models import Category, Product
from .services import AlreadyBought, Cart, search_products

PAGE_SIZE = 24


def _page(request, queryset, count=None):
    """The requested page of ``queryset``; ``count``, when already known, saves counting."""
    paginator = Paginator(queryset, PAGE_SIZE)
    if count is not None:
        paginator.count = count  # a cached property: set, it is not queried again
    return paginator.get_page(request.GET.get("page"))


def _newest():
    return list(
        Product.objects.active().select_related("category").order_by("-created_at", "-id")[:12]
    )


def _newest_grid():
    return render_to_string("shop/_grid.html", {"products": _newest()})


def home(request):
    # "New in" changes only when a product is saved: kept per process under the catalogue's
    # stamp, rendered (twelve cards cost more than the rest of the page's own markup).
    latest = CATALOGUE.get(("shop.new-in", get_language()), _newest_grid)
    return render(request, "shop/home.html", {"latest_grid": latest})


def category(request, slug):
    cat = get_object_or_404(Category, slug=slug)
    products = Product.objects.active().filter(category=cat).select_related("category")
    return render(
        request, "shop/category.html", {"category": cat, "page": _page(request, products)}
    )


def product_detail(request, pk):
    product = get_object_or_404(Product.objects.select_related("category"), pk=pk, is_active=True)
    record_view(request, product)
    return render(request, "shop/product.html", {"product": product, "form": AddToCartForm()})


def search(request):
    form = SearchForm(request.GET)
    if not form.is_valid():
        context = {"query": "", "errors": form.errors.get("q", []), "page": None}
        return render(request, "shop/search.html", context, status=400)
    query = form.cleaned_data["q"]
    found = search_products(query)
    page = _page(request, found.products, found.count)
    context = {"query": query, "page": page, "found": found}
    return render(request, "shop/search.html", context)


def _posted_quantity(request, form, product, least):
    """The form's quantity, or ``None`` after telling the shopper which ones they can choose
    (from ``least`` to the form's most or the stock, whichever is lower)."""
    if form.is_valid():
        return form.cleaned_data["quantity"]
    most = min(form.fields["quantity"].max_value, product.stock)
    if most < least:
        messages.error(request, f"{product.title} is out of stock.")
    else:
        messages.error(request, f"Please choose a quantity between {least} and {most}.")
    return None


@require_POST
def cart_add(request, pk):
    product = get_object_or_404(Product, pk=pk)
    quantity = _posted_quantity(request, AddToCartForm(request.POST), product, least=1)
    if quantity is None:
        return redirect(product)
    try:
        Cart(request).add(product, quantity)
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect(product)
    messages.success(request, f"{product.title} was added to your cart.")
    return redirect("shop:cart")


@require_POST
def cart_update(request, pk):
    product = get_object_or_404(Product, pk=pk)
    quantity = _posted_quantity(request, CartQuantityForm(request.POST), product, least=0)
    if quantity is None:
        return redirect("shop:cart")
    try:
        Cart(request).set_quantity(product, quantity)
    except ValueError as exc:
        messages.error(request, str(exc))
    return redirect("shop:cart")


@require_POST
def cart_remove(request, pk):
    Cart(request).remove(pk)
    return redirect("shop:cart")


def cart(request):
    c = Cart(request)
    return render(request, "shop/cart.html", {"lines": c.lines(), "total": c.total()})


@require_POST
def checkout(request):
    cart = Cart(request)
    if not cart.items:
        return redirect("shop:cart")  # the cart page says it is empty
    try:
        lines = cart.checkout()
    except AlreadyBought as exc:  # sent twice (a double click): the first one bought it
        messages.info(request, str(exc))
        return redirect("shop:home")
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("shop:cart")
    items = sum(qty for _, qty, _ in lines)
    noun = "item" if items == 1 else "items"
    messages.success(request, f"Thank you! Your order of {items} {noun} is confirmed.")
    return redirect("shop:home")


def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        messages.success(request, "Welcome! Your account was created.")
        return redirect("shop:home")
    return render(request, "registration/signup.html", {"form": form})
