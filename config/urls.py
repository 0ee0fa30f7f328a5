from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404
from django.urls import include, path, re_path
from django.views.decorators.cache import cache_control
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from health_check.views import HealthCheckView

from lookalike.metrics import metrics_view
from visualsearch.api.views import NotFoundView

#: An unhandled error, or a request Django refused before any view ran, answers JSON under
#: /api/ too (Django's pages elsewhere).
handler400 = "visualsearch.api.views.bad_request"
handler500 = "visualsearch.api.views.server_error"

#: What /health/ checks (django-health-check): 200 when all pass, 500 otherwise, as JSON with
#: ``Accept: application/json`` or ``?format=json``. The models' checks load them, so the
#: first call after a start warms the process up.
HEALTH_CHECKS = [
    "health_check.checks.Database",
    "health_check.checks.Cache",
    "lookalike.health.JobBroker",
    "lookalike.health.JobWorkers",
    "lookalike.health.Replicas",
    "visualsearch.health.VisualEncoder",
    "recommendations.health.Recommender",
]

#: What /health/ready/ checks: what a page needs to be served, for a load balancer's probe.
#: The cache is optional to pages, the broker only runs jobs, and the widgets and searches
#: degrade (no model yet: "Popular now"; no vectors yet: a notice) where /health/ says 500.
READY_CHECKS = ["health_check.checks.Database"]

urlpatterns = [
    path("health/", HealthCheckView.as_view(checks=HEALTH_CHECKS), name="health"),
    path("health/ready/", HealthCheckView.as_view(checks=READY_CHECKS), name="health-ready"),
    # Prometheus' scrape target; keep it to the monitoring network (see the README).
    path("metrics", metrics_view, name="prometheus-metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("visual/", include("visualsearch.urls")),
    path("api/", include("lookalike.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Whatever else is under /api/ is a JSON 404, never the shop's HTML page. Only paths
    # ending in "/": a path without one is still redirected to it first (APPEND_SLASH).
    re_path(r"^api/(?:.*/)?$", NotFoundView.as_view()),
    path("", include("shop.urls")),
]

if settings.DEBUG or getattr(settings, "SERVE_MEDIA", True):
    # The demo serves product photos itself; a production shop puts them behind its web server.
    # Browsers keep them a day (a stored file is never overwritten: a new photo gets a new
    # name), so a page's two dozen photos do not take a server thread each on every visit.
    @cache_control(public=True, max_age=86400)
    def media(request, path):
        try:
            return serve(request, path, document_root=settings.MEDIA_ROOT)
        except SuspiciousFileOperation:  # "../": a plain 404, not a traceback in the log
            raise Http404 from None

    urlpatterns += [path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", media)]
