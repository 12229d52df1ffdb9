from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from green import api, errors

app_name = "green"

urlpatterns = [
    path("image/scan", api.ImageScan.as_view(), name="image-scan"),
    path("image/asyncscan", api.ImageAsyncScan.as_view(), name="image-asyncscan"),
    path("image/results", api.ImageResults.as_view(), name="image-results"),
    path("image/feedback", api.ImageFeedback.as_view(), name="image-feedback"),
    path("text/scan", api.TextScan.as_view(), name="text-scan"),
    path("text/feedback", api.TextFeedback.as_view(), name="text-feedback"),
    path("video/asyncscan", api.VideoAsyncScan.as_view(), name="video-asyncscan"),
    path("video/results", api.VideoResults.as_view(), name="video-results"),
    # Anything else under /green/ is answered in the envelope too, never an HTML 404.
    re_path(r"^.*$", csrf_exempt(errors.not_found)),
]
