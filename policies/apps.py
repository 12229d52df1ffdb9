from django.apps import AppConfig
from django.db.models.signals import post_migrate


def default_policy_ensure(sender, **kwargs) -> None:
    # The migration made it; this brings it back after a flush (tests) or an accidental delete.
    from policies.models import DEFAULT_BIZ_TYPE, Policy

    Policy.objects.get_or_create(biz_type=DEFAULT_BIZ_TYPE)


class PoliciesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "policies"

    def ready(self):
        post_migrate.connect(default_policy_ensure, sender=self)
