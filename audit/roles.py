"""The console's two roles: Reviewer (the Audit pages and decisions) and Admin (everything)."""

REVIEWER = "Reviewer"
ADMIN = "Admin"
REVIEWER_PERMISSIONS = [
    ("audit", "view_result"),
    ("audit", "view_decision"),
    ("audit", "add_decision"),
    ("policies", "view_policy"),
]
ADMIN_APPS = ["audit", "policies", "samples", "green", "auth", "authtoken", "django_celery_beat"]


def roles_ensure(group_model, permission_model) -> None:
    """Create both groups with their permissions; safe to run any number of times.

    Takes the models as arguments so the migration can pass its historical ones.
    """
    reviewer, _ = group_model.objects.get_or_create(name=REVIEWER)
    for app_label, codename in REVIEWER_PERMISSIONS:
        permission = permission_model.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if permission is not None:
            reviewer.permissions.add(permission)
    admin, _ = group_model.objects.get_or_create(name=ADMIN)
    admin.permissions.add(*permission_model.objects.filter(content_type__app_label__in=ADMIN_APPS))


def roles_ensure_after_migrate(sender, **kwargs) -> None:
    # Also after a test database flush, which empties auth_group but re-runs post_migrate.
    from django.contrib.auth.models import Group, Permission

    roles_ensure(Group, Permission)
