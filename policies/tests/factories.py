import factory
from django.contrib.auth.models import Group

from audit.tests.factories import UserFactory
from policies.models import Policy


class PolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Policy
        django_get_or_create = ("biz_type",)

    biz_type = factory.Sequence(lambda n: f"biz{n}")


def reviewer():
    user = UserFactory()
    user.groups.add(Group.objects.get(name="Reviewer"))
    return user


def admin_user():
    """An Admin-group member; is_staff lets them into the Django admin too."""
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="Admin"))
    return user
