from django.urls import path

from policies import api

app_name = "policies-api"

urlpatterns = [
    path("policies", api.PolicyList.as_view(), name="list"),
    path("policies/<str:biz_type>", api.PolicyDetail.as_view(), name="detail"),
    path(
        "policies/<str:biz_type>/callback-secret",
        api.PolicyCallbackSecret.as_view(),
        name="callback-secret",
    ),
]
