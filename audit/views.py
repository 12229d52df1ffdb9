from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import render
from django.views.static import serve

from audit import selectors


@login_required
def home(request):
    context = {
        "counts": selectors.result_counts(),
        "retention_days": settings.RESULT_RETENTION_DAYS,
    }
    return render(request, "audit/home.html", context)


@permission_required("audit.view_result", raise_exception=True)
def media_serve(request, path: str):
    """Media of results is harmful content: only signed-in people allowed to review see it.

    In production put a web server's X-Accel-Redirect/X-Sendfile in front of this check.
    """
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
