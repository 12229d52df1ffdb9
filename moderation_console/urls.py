from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from audit import api as audit_api
from audit import views as audit_views
from audit.views import media_serve
from green import console as green_console

api_v1 = [
    path("results", audit_api.ResultListCreate.as_view(), name="results"),
    path("results/mark", audit_api.ResultMark.as_view(), name="results-mark"),
    path("scan/<str:media_type>", audit_api.ResultScan.as_view(), name="scan"),
    path("results/<str:task_id>", audit_api.ResultDetail.as_view(), name="result-detail"),
]

urlpatterns = [
    # The console API of Alibaba's SDK posts to the root (RPC style); people get the home page.
    path("", green_console.console_or(audit_views.home), name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/v1/", include("policies.api_urls")),
    path("api/v1/", include("samples.api_urls")),
    path("audit/", include("audit.urls")),
    path("green/", include("green.urls")),  # the Alibaba-compatible scan API
    path("audit/media/", include("audit.media_urls")),
    path("policies/", include("policies.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="schema"), name="api-docs"),
    path(f"{settings.MEDIA_URL.lstrip('/')}<path:path>", media_serve, name="media"),
]
