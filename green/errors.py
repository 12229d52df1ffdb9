"""Errors in Alibaba's shape, always JSON, whatever went wrong.

The body carries both envelopes: the scan API's v1 `{code, msg, requestId}` (clients check
`code`), and the gateway's `{Code, Message, RequestId}`, which both SDKs turn into their
exception's error code on a non-2xx answer (aliyunsdkcore ServerException, Tea's
ClientException). The HTTP status is the v1 code.
"""

import logging
import uuid

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class GreenError(exceptions.APIException):
    """`code` is the v1 (and HTTP) status, `error_code` the gateway's name for it."""

    def __init__(self, code: int, error_code: str, message: str):
        super().__init__(message)
        self.status_code = code
        self.error_code = error_code
        self.message = message


def bad_request(message: str) -> GreenError:
    return GreenError(400, "InvalidParameter", message)


def request_id_new() -> str:
    return str(uuid.uuid4()).upper()


def envelope(code: int, error_code: str, message: str, request_id: str) -> dict:
    return {
        "code": code,
        "msg": message,
        "requestId": request_id,
        "Code": error_code,
        "Message": message,
        "RequestId": request_id,
    }


# DRF's own exceptions, in Alibaba's words.
_DRF_CODES = [
    (exceptions.NotAuthenticated, 401, "MissingAuthorization"),
    (exceptions.AuthenticationFailed, 401, "InvalidAuthorization"),
    (exceptions.PermissionDenied, 403, "Forbidden"),
    (exceptions.NotFound, 404, "NotFound"),
    (exceptions.MethodNotAllowed, 405, "UnsupportedHTTPMethod"),
    (exceptions.ParseError, 400, "InvalidParameter"),
    (exceptions.UnsupportedMediaType, 415, "UnsupportedMediaType"),
    (exceptions.Throttled, 429, "Throttling"),
]


def exception_handler(exc, context) -> Response:
    """DRF's exception handler for the green views: every error gets the envelope."""
    request = context.get("request")
    request_id = getattr(request, "green_request_id", None) or request_id_new()
    code, error_code, message = _described(exc)
    return Response(envelope(code, error_code, message, request_id), status=code)


def _described(exc) -> tuple[int, str, str]:
    if isinstance(exc, GreenError):
        return exc.status_code, exc.error_code, exc.message
    if isinstance(exc, RequestDataTooBig):
        return 413, "RequestTooLarge", "The request body is larger than the limit."
    for kind, code, error_code in _DRF_CODES:
        if isinstance(exc, kind):
            return code, error_code, _detail_text(exc.detail)
    if isinstance(exc, exceptions.ValidationError):
        return 400, "InvalidParameter", _detail_text(exc.detail)
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, "Error", _detail_text(exc.detail)
    # Never Django's HTML 500 page: clients parse every answer as JSON.
    logger.exception("green API request failed", exc_info=exc)
    return status.HTTP_500_INTERNAL_SERVER_ERROR, "InternalError", "GENERAL_ERROR"


def _detail_text(detail, prefix: str = "") -> str:
    """DRF's nested error details as one line: `tasks.0.url: Enter a valid URL.`"""
    if isinstance(detail, dict):
        return "; ".join(_detail_text(v, f"{prefix}{k}.") for k, v in detail.items())
    if isinstance(detail, list):
        if all(not isinstance(d, dict | list) for d in detail):
            return f"{prefix[:-1]}: " * bool(prefix) + " ".join(str(d) for d in detail)
        return "; ".join(_detail_text(v, f"{prefix}{i}.") for i, v in enumerate(detail) if v)
    return f"{prefix[:-1]}: " * bool(prefix) + str(detail)


def not_found(request, path: str = "") -> JsonResponse:
    """Any /green/ path that is not an endpoint."""
    message = f"Unknown API: {request.path}"
    return JsonResponse(envelope(404, "InvalidAction", message, request_id_new()), status=404)
