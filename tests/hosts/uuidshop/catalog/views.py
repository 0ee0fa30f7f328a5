from django.shortcuts import get_object_or_404, render

from recommendations.events import record_view

from .models import Item


def home(request):
    return render(request, "catalog/home.html")


def item(request, pk):
    item = get_object_or_404(Item, pk=pk, listed=True)
    record_view(request, item)
    return render(request, "catalog/item.html", {"item": item})
