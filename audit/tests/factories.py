import io
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from PIL import Image
from rest_framework.authtoken.models import Token

from audit.models import MediaType, Result


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("a-long-test-password")


def api_client_user(*perms: str):
    user = UserFactory()
    for perm in perms or ("add_result", "view_result"):
        user.user_permissions.add(
            Permission.objects.get(codename=perm, content_type__app_label="audit")
        )
    return user, Token.objects.create(user=user).key


class ResultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Result

    media_type = MediaType.TEXT
    task_id = factory.Sequence(lambda n: f"txt-test-{n}")
    text = "hello"
    scene_results = factory.LazyAttribute(
        lambda o: [
            {"scene": "antispam", "label": o.label, "suggestion": o.suggestion, "rate": 90.0}
        ]
    )
    machine_suggestion = factory.SelfAttribute("suggestion")
    machine_label = factory.SelfAttribute("label")
    suggestion = "review"
    label = "spam"
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(days=7))


def image_bytes(size=(64, 48), fmt="JPEG", color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def user_in(group: str, **fields):
    """A user in the Reviewer or Admin group (both made by migration audit/0002_groups)."""
    from django.contrib.auth.models import Group

    user = UserFactory(**fields)
    user.groups.add(Group.objects.get(name=group))
    return user
