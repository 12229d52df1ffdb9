"""
WSGI config for moderation_console project.

It exposes the WSGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "moderation_console.settings")

application = get_wsgi_application()

from samples import warmup  # noqa: E402 - after the apps are loaded

warmup.indexes_warm_up_in_background()
