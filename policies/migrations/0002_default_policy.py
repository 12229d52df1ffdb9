from django.db import migrations


def create_default_policy(apps, schema_editor):
    apps.get_model("policies", "Policy").objects.get_or_create(biz_type="default")


class Migration(migrations.Migration):
    dependencies = [("policies", "0001_initial")]

    operations = [migrations.RunPython(create_default_policy, migrations.RunPython.noop)]
