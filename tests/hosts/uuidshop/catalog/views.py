from django.shortcuts import get_object_or_404, render

from recommendations.events import record_event

from .models import Item


def home(request):
    return render(request, "catalog/home.html")


def item(request, pk):
    item = get_object_or_404(Item, pk=pk, listed=True)
    source = request.GET.get("from", "")
    record_event(request, item, "similar_click" if source else "view", source=source)
    return render(request, "catalog/item.html", {"item": item})
