"""Input checked once, at the edge: what no layer below may ever see.

- NUL characters: PostgreSQL text cannot hold them, so a NUL that reached a query was an
  HTTP 500. :class:`ecbao.middleware.InputGuardMiddleware` refuses them in the path, the
  query string and form bodies; :class:`ecbao.api.JSONParser` in JSON bodies.
- Date-times: Python accepts UTC offsets up to ±23:59, PostgreSQL only up to ±15:59, and a
  value near year 1 or 9999 overflows when converted. :func:`to_utc` normalises every parsed
  date-time to UTC (or refuses it); the form field and the API filter below use it.
"""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

NUL = "\x00"
# PostgreSQL's timestamptz covers far more than Python's datetime; keep one day of margin on
# both ends so that a later conversion to any time zone cannot overflow either.
_EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_LATEST = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


def has_nul(*values: str) -> bool:
    return any(NUL in value for value in values)


def to_utc(value: dt.datetime | None) -> dt.datetime | None:
    """An aware UTC datetime for ``value`` (naive values are read in the current time zone);
    ``ValueError`` when it cannot be represented."""
    if value is None:
        return None
    try:
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        value = value.astimezone(dt.UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("date-time out of range") from exc
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError("date-time out of range")
    return value


class UTCDateTimeMixin:
    """For ``forms.DateTimeField`` subclasses: the cleaned value is UTC, or a validation error."""

    default_error_messages = {"out_of_range": _("Enter a date and time between the years 1 and 9999.")}

    def to_python(self, value):
        result = super().to_python(value)
        try:
            return to_utc(result)
        except ValueError:
            raise ValidationError(self.error_messages["out_of_range"], code="out_of_range") from None


class DateTimeField(UTCDateTimeMixin, forms.DateTimeField):
    """A form date-time that always reaches the database in range (any offset, converted to UTC)."""


class _IsoDateTimeField(UTCDateTimeMixin, django_filters.fields.IsoDateTimeField):
    pass


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """``django_filters.IsoDateTimeFilter`` whose value is converted to UTC or refused (400)."""

    field_class = _IsoDateTimeField
