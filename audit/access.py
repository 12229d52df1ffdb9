from django.contrib.auth.decorators import login_required, permission_required


def signed_in_with(perm: str | list[str]):
    """A page for signed-in users with `perm`: anonymous visitors go to the login page, a
    signed-in user without the permission gets 403 (not a login loop)."""

    def decorate(view):
        return login_required(permission_required(perm, raise_exception=True)(view))

    return decorate
