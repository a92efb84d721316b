"""API conventions shared by every app: error format, JSON-only parsing, keyset pagination
with a validated page size, typed filters, and the schema's error responses."""

from __future__ import annotations

import re

import django_filters
from django import forms
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import Http404
from django.utils.translation import gettext
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import BasePagination
from rest_framework.parsers import JSONParser as DRFJSONParser
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from ecbao import inputs, paging


def _contains_nul(value) -> bool:
    if isinstance(value, str):
        return inputs.NUL in value
    if isinstance(value, dict):  # keys name fields; unknown ones are ignored, so only values count
        return any(_contains_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


class JSONParser(DRFJSONParser):
    """The API's only parser (the API is JSON): a body with a NUL character in any string
    value is refused (400) before a serializer or query sees it."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if _contains_nul(data):
            raise exceptions.ParseError(gettext("JSON parse error - NUL characters are not allowed."))
        return data


MAX_BIGINT = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,4}")


def page_size_from(request, *, default: int, maximum: int) -> int:
    """The ``page_size`` query parameter: absent → ``default``; anything but a whole number from 1
    to ``maximum`` → 400 (never silently replaced by the default)."""
    raw = request.query_params.get("page_size")
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise exceptions.ValidationError({"page_size": [f"Enter a whole number from 1 to {maximum}."]})
    return int(raw)


def page_size_parameter(*, default: int, maximum: int, noun: str = "Items") -> dict:
    return {
        "name": "page_size",
        "required": False,
        "in": "query",
        "description": f"{noun} per page (1–{maximum}, default {default}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


class KeysetPagination(BasePagination):
    """Keyset pages (``ecbao.paging``) for every API list: every page costs the same, however
    deep, and rows arriving meanwhile never shift later pages. Follow ``next``/``previous``
    (``cursor`` = ``n``/``p`` + a position). ``keyset``: the order, newest id first unless a
    list says otherwise (the orders list: ``(placed_at, id)``)."""

    page_size = 50
    max_page_size = 200
    keyset = paging.Keyset("-id")
    noun = "Items"

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        size = page_size_from(request, default=self.page_size, maximum=self.max_page_size)
        cursor = request.query_params.get("cursor", "")
        after = before = ""
        if cursor:
            direction, key = cursor[:1], cursor[1:]
            if direction not in ("n", "p") or self.keyset.parse(queryset.model, key) is None:
                raise exceptions.NotFound(gettext("Invalid cursor"))
            after, before = (key, "") if direction == "n" else ("", key)
        self.page = self.keyset.page(queryset, after=after, before=before, size=size)
        return self.page.rows

    def _link(self, direction: str, key: str | None) -> str | None:
        if not key:
            return None
        return replace_query_param(self.request.build_absolute_uri(), "cursor", direction + key)

    def get_paginated_response(self, data):
        return Response(
            {
                "next": self._link("n", self.page.next_key),
                "previous": self._link("p", self.page.prev_key),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["results"],
            "properties": {"next": link, "previous": link, "results": schema},
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "cursor",
                "required": False,
                "in": "query",
                "description": "Page position, taken from the `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            page_size_parameter(default=self.page_size, maximum=self.max_page_size, noun=self.noun),
        ]


class StrictCharField(serializers.CharField):
    """A string, and only a string (DRF's CharField turns numbers into text)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false`` only (DRF's BooleanField also takes 0, 1 and strings)."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class ModelSerializer(serializers.ModelSerializer):
    """For writable model serializers: strings must be strings and booleans booleans, as the
    schema says (no silent coercion of numbers)."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: StrictBooleanField,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }


# --- filters: typed, bounded, and never a 500 or a silent "no filter" --------------------------------


class _BoundedIntegerField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", -MAX_BIGINT)
        kwargs.setdefault("max_value", MAX_BIGINT)
        super().__init__(*args, **kwargs)


class _IdField(_BoundedIntegerField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        super().__init__(*args, **kwargs)


class _StrictBooleanField(forms.Field):
    """``true``/``false`` (also ``True``/``False``/``1``/``0``); anything else is refused."""

    _VALUES = {"true": True, "True": True, "1": True, "false": False, "False": False, "0": False}

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value not in self._VALUES:
            raise forms.ValidationError(gettext("Enter true or false."), code="invalid")
        return self._VALUES[value]


class BooleanFilter(django_filters.BooleanFilter):
    field_class = _StrictBooleanField


@extend_schema_field({"type": "integer", "format": "int64", "minimum": -MAX_BIGINT, "maximum": MAX_BIGINT})
class IntegerFilter(django_filters.NumberFilter):
    """A whole number (a float such as ``1.5`` is refused, as the schema says)."""

    field_class = _BoundedIntegerField


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_BIGINT})
class IdFilter(django_filters.NumberFilter):
    """An object id: an id that matches nothing gives an empty list, not an error."""

    field_class = _IdField


class FilterSet(django_filters.rest_framework.FilterSet):
    """The API's filter sets: relations and integers filter by bounded whole numbers; a filter
    given with an empty value is refused (400) instead of being silently ignored."""

    FILTER_DEFAULTS = {
        **django_filters.rest_framework.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": BooleanFilter},
        models.ForeignKey: {"filter_class": IdFilter},
        models.OneToOneField: {"filter_class": IdFilter},
        models.AutoField: {"filter_class": IdFilter},
        models.BigAutoField: {"filter_class": IdFilter},
        models.IntegerField: {"filter_class": IntegerFilter},
        models.BigIntegerField: {"filter_class": IntegerFilter},
        models.SmallIntegerField: {"filter_class": IntegerFilter},
        models.PositiveIntegerField: {"filter_class": IntegerFilter},
        models.PositiveSmallIntegerField: {"filter_class": IntegerFilter},
        models.PositiveBigIntegerField: {"filter_class": IntegerFilter},
    }

    def is_valid(self):
        super().is_valid()
        for name, declared in self.filters.items():
            if isinstance(declared, django_filters.CharFilter):
                continue  # an empty search is no search
            if name in self.data and "" in self.data.getlist(name):
                self.form.add_error(name, "This value may not be empty.")
        return self.form.is_valid()


class FilterBackend(DjangoFilterBackend):
    filterset_base = FilterSet


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
        message = gettext("Some fields are invalid.")
        details = exc.detail
    else:
        message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else exc.default_detail
        details = None
    response.data = {"error": {"code": _code_for(exc), "message": message, "details": details}}
    return response


def error_response(*, code: str, message: str, http_status: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"error": {"code": code, "message": message, "details": None}}, status=http_status)


# --- the schema: every operation documents its error responses ------------------------------------


class ApiTokenScheme(KnoxTokenScheme):
    """``Authorization: Token <key>`` (knox tokens, also through subclasses) in the schema."""

    match_subclasses = True


_ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
_ENVELOPE_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"nullable": True},
            },
        }
    },
}
_ERRORS = {
    "400": "Invalid input (code `invalid`, `parse_error`, …; field errors in `details`).",
    "401": "Not authenticated, or a token that is not valid here (code `not_authenticated` / "
    "`authentication_failed`).",
    "403": "The user's role lacks the capability (code `permission_denied`).",
    "404": "No such object, or an invalid cursor (code `not_found`).",
}


NO_NUL_PATTERN = "^[^\\u0000]*$"


def _forbid_nul(schema) -> None:
    """Plain strings may not contain NUL (PostgreSQL text cannot hold it; the API refuses it)."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and not ({"format", "enum", "pattern"} & set(schema)):
            schema["pattern"] = NO_NUL_PATTERN
        for value in schema.values():
            _forbid_nul(value)
    elif isinstance(schema, list):
        for value in schema:
            _forbid_nul(value)


def error_responses_hook(result, generator, request, public):
    """drf-spectacular postprocessing hook: the error envelope component, and 400/401/403/404
    (415 where there is a body; 400/404/429 for the unauthenticated token endpoint) on every
    operation that does not document them itself; strings say they cannot hold NUL."""
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault(
        "ErrorEnvelope", _ENVELOPE_SCHEMA
    )
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            codes = dict(_ERRORS)
            if "requestBody" in operation:
                codes["415"] = "The body is not JSON (code `unsupported_media_type`)."
            if operation.get("security") in (None, [], [{}]):
                codes = {
                    "400": codes["400"],
                    "404": codes["404"],
                    "415": codes.get("415", codes["400"]),
                    "429": "Too many attempts (code `locked` / `throttled`).",
                }
            for code, description in codes.items():
                responses.setdefault(
                    code,
                    {"description": description, "content": {"application/json": {"schema": _ENVELOPE_REF}}},
                )
            _forbid_nul(operation.get("parameters", []))
            _forbid_nul(operation.get("requestBody", {}))
    _forbid_nul(result["components"]["schemas"])
    return result
