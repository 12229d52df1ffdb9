from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
    verbose_name = "Audit: the result store"

    def ready(self):
        from audit import roles, schedules

        # For every app, not just this one: the last app's signal comes after all permissions
        # exist (policies' come after audit's).
        post_migrate.connect(roles.roles_ensure_after_migrate, dispatch_uid="roles_ensure")
        post_migrate.connect(
            schedules.schedules_ensure_after_migrate, dispatch_uid="schedules_ensure"
        )
