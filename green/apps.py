from django.apps import AppConfig


class GreenConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "green"
    verbose_name = "Alibaba-compatible API (Green)"
