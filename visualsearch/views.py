from django.http import HttpResponse


def similar(request, pk):
    return HttpResponse("Visual search is not built yet.", status=501)


def search_by_photo(request):
    return HttpResponse("Visual search is not built yet.", status=501)
