from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("counts", views.counts, name="counts"),
    path("decide", views.decide, name="decide"),
    path("items/<str:task_id>/", views.detail, name="detail"),
]
