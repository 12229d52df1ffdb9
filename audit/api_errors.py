"""One JSON error shape for the whole API: {"code", "msg", "errors"?}, never an HTML page."""

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    body = {"code": response.status_code}
    if isinstance(exc, exceptions.ValidationError):
        body["msg"] = "Invalid request: see errors."
        body["errors"] = response.data
    else:
        body["msg"] = (
            str(response.data.get("detail", "")) if isinstance(response.data, dict) else ""
        )
    response.data = body
    return response


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than the limit (RESULTS_MAX_REQUEST_BYTES)."
    default_code = "request_too_large"
