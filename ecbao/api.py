"""API conventions shared by every app: error format and keyset pagination."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser as DRFJSONParser
from rest_framework.response import Response

from ecbao import inputs


def _contains_nul(value) -> bool:
    if isinstance(value, str):
        return inputs.NUL in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


class JSONParser(DRFJSONParser):
    """The API's only parser (the API is JSON): a body with a NUL character in any key or
    string is refused (400) before a serializer or query sees it."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if _contains_nul(data):
            raise exceptions.ParseError("JSON parse error - NUL characters are not allowed.")
        return data


class KeysetPagination(CursorPagination):
    """Cursor (keyset) pagination: every page costs the same, however deep."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"


def _code_for(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return "invalid" if isinstance(exc, exceptions.ValidationError) else exc.default_code


def exception_handler(exc, context):
    """Every error body is ``{"error": {"code", "message", "details"}}``."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES (this module's JSONParser)
    # when it is first imported, which must not happen while this module is half-loaded.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        message = "Some fields are invalid."
        details = exc.detail
    else:
        message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else exc.default_detail
        details = None
    response.data = {"error": {"code": _code_for(exc), "message": message, "details": details}}
    return response


def error_response(*, code: str, message: str, http_status: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"error": {"code": code, "message": message, "details": None}}, status=http_status)
