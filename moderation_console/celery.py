import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")

app = Celery("moderation_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
