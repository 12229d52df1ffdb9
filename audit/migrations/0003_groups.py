"""The two roles of the console: Reviewer (the Audit pages and decisions) and Admin (all)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

REVIEWER_PERMISSIONS = [
    ("audit", "view_result"),
    ("audit", "view_decision"),
    ("audit", "add_decision"),
    ("policies", "view_policy"),
]
ADMIN_APPS = ["audit", "policies", "samples", "auth", "authtoken"]


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations ran; these groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    reviewer, _ = Group.objects.get_or_create(name="Reviewer")
    for app_label, codename in REVIEWER_PERMISSIONS:
        reviewer.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    admin, _ = Group.objects.get_or_create(name="Admin")
    admin.permissions.add(*Permission.objects.filter(content_type__app_label__in=ADMIN_APPS))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Reviewer", "Admin"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_decisions"),
        ("policies", "0002_default_policy"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
