"""The few neutral errors a connector raises. Callers decide retry/backoff from the type."""

from __future__ import annotations


class ChannelError(Exception):
    """Base of every connector error."""


class AuthExpired(ChannelError):
    """The shop's authorisation is gone or the token cannot be refreshed: the merchant must reconnect."""


class RateLimited(ChannelError):
    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PlatformRejected(ChannelError):
    """The platform understood the call and said no (business rule, bad parameter)."""

    def __init__(self, message: str, *, code: str = "", sub_code: str = "") -> None:
        super().__init__(f"{code}{'/' + sub_code if sub_code else ''}: {message}" if code else message)
        self.code = code
        self.sub_code = sub_code
        self.platform_message = message


class TemporarilyUnavailable(ChannelError):
    """Timeouts, connection errors, 5xx, malformed bodies: safe to try again later."""


class BadPushMessage(ChannelError):
    """A push failed verification or could not be decoded."""


class NotSupported(ChannelError):
    """The platform has no API for this (e.g. Douyin has no dropship-assignment API)."""
