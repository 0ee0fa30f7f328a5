from django.urls import path

from . import views

app_name = "visualsearch"

urlpatterns = [
    path("similar/<str:pk>/", views.similar, name="similar"),
    path("photo/", views.search_by_photo, name="search_by_photo"),
]
