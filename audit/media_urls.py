from django.urls import path

from audit import media_views

app_name = "audit_media"

urlpatterns = [
    path("<str:task_id>/thumb", media_views.result_thumb, name="thumb"),
    path("<str:task_id>/poster", media_views.result_poster, name="poster"),
    path("<str:task_id>/frame/<str:offset>", media_views.result_frame, name="frame"),
    path("<str:task_id>/file", media_views.result_file, name="file"),
]
