from django.urls import path

from samples import api

app_name = "samples-api"

urlpatterns = [
    path("samples/libraries", api.LibraryList.as_view(), name="libraries"),
    path("samples", api.SampleListCreate.as_view(), name="list"),
    path("samples/<int:sample_id>", api.SampleDetail.as_view(), name="detail"),
]
