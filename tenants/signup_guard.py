"""Sign-up creates a PostgreSQL schema per request, so it is rationed (issue 12, defect 8).

Per client address (``ecbao.clientip``): after ``SIGNUP_CHALLENGE_AFTER`` attempts in an hour
the form asks a small sum (a cheap challenge, no outside service); after
``SIGNUP_ADDRESS_ATTEMPTS`` attempts the address is refused for the rest of the hour. Creating a
workspace is counted apart: at most ``SIGNUP_CREATIONS_PER_ADDRESS`` per address and
``SIGNUP_CREATIONS_PER_EMAIL`` per e-mail address a day. A creation is reserved (counted) before
the schema is made, so concurrent requests cannot slip past the limit together.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings

from ecbao import ratelimit

HOUR = 60 * 60
DAY = 24 * HOUR
CHALLENGE_SESSION_KEY = "signup_challenge"


def _key(kind: str, value: str) -> str:
    return f"signup:{kind}:{value}"


def _email_key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return _key("created-by-email", digest)


def address_refused(ip: str | None) -> bool:
    return bool(ip) and ratelimit.count(_key("attempts", ip)) >= settings.SIGNUP_ADDRESS_ATTEMPTS


def needs_challenge(ip: str | None) -> bool:
    return not ip or ratelimit.count(_key("attempts", ip)) >= settings.SIGNUP_CHALLENGE_AFTER


def note_attempt(ip: str | None) -> None:
    if ip:
        ratelimit.hit(_key("attempts", ip), HOUR)


def reserve_creation(ip: str | None, email: str) -> bool:
    """Count a workspace about to be created; False when the address or e-mail had its share."""
    by_address = ratelimit.hit(_key("created-by-address", ip or "unknown"), DAY)
    by_email = ratelimit.hit(_email_key(email), DAY)
    return (
        by_address <= settings.SIGNUP_CREATIONS_PER_ADDRESS
        and by_email <= settings.SIGNUP_CREATIONS_PER_EMAIL
    )


class Challenge:
    """A sum kept in the session; each question is answered once (right or wrong, a new one follows)."""

    def __init__(self, session) -> None:
        self.session = session

    def question(self) -> tuple[int, int]:
        stored = self.session.get(CHALLENGE_SESSION_KEY)
        if not stored:
            stored = [secrets.randbelow(40) + 10, secrets.randbelow(9) + 1]
            self.session[CHALLENGE_SESSION_KEY] = stored
        return stored[0], stored[1]

    def check(self, answer: int | None) -> bool:
        stored = self.session.pop(CHALLENGE_SESSION_KEY, None)
        return bool(stored) and answer == stored[0] + stored[1]
