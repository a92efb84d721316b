"""Login throttling (issue 12, defect 2): a lock that attackers cannot turn against users.

Every attack runs against both doors: the login page and the API token endpoint.
"""

import pytest

from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD, make_user, tenant_client

PASSWORD = "Staff-pass-2026"
ATTACKER = "203.0.113.66"
OWNER_HOME = "198.51.100.7"


def attempt(tenant, door: str, username: str, password: str, **meta) -> str:
    """One sign-in attempt from a fresh browser/client; returns "ok", "locked" or "failed"."""
    client = tenant_client(tenant)
    if door == "page":
        response = client.post("/accounts/login/", {"username": username, "password": password}, **meta)
        if response.status_code == 302:
            return "ok"
        assert response.status_code == 200
        errors = response.context["form"].non_field_errors().as_data()
        return "locked" if any(e.code == "locked" for e in errors) else "failed"
    response = client.post(
        "/api/v1/auth/token/",
        {"username": username, "password": password},
        content_type="application/json",
        **meta,
    )
    if response.status_code == 200:
        assert response.json()["token"]
        return "ok"
    code = response.json()["error"]["code"]
    assert (response.status_code, code) in {(429, "locked"), (400, "authentication_failed")}
    return "locked" if code == "locked" else "failed"


DOORS = ["page", "api"]


@pytest.mark.parametrize("door", DOORS)
def test_issue12_d2_guessing_locks_only_the_guessers_address_not_the_owner(alpha, settings, door):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(alpha, door, "alpha-owner", "wrong-guess", REMOTE_ADDR=ATTACKER) == "failed"
    assert attempt(alpha, door, "alpha-owner", "wrong-guess", REMOTE_ADDR=ATTACKER) == "locked"
    # The attacker's (username, address) pair stays locked, even with the right password …
    assert attempt(alpha, door, "alpha-owner", OWNER_PASSWORD, REMOTE_ADDR=ATTACKER) == "locked"
    # … but the owner, from their own address, signs in: nobody can lock them out.
    assert attempt(alpha, door, "alpha-owner", OWNER_PASSWORD, REMOTE_ADDR=OWNER_HOME) == "ok"
    # Another user at the attacker's address is not locked by the pair lock either.
    make_user(alpha, "colleague", Role.OPERATOR)
    assert attempt(alpha, door, "colleague", PASSWORD, REMOTE_ADDR=ATTACKER) == "ok"


@pytest.mark.parametrize("door", DOORS)
def test_issue12_d2_users_behind_the_trusted_proxy_are_told_apart(alpha, settings, door):
    settings.ECBAO_TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(alpha, door, "alpha-owner", "wrong", HTTP_X_FORWARDED_FOR=ATTACKER, **proxy)
    assert (
        attempt(alpha, door, "alpha-owner", OWNER_PASSWORD, HTTP_X_FORWARDED_FOR=ATTACKER, **proxy)
        == "locked"
    )
    # Everyone arrives from the proxy's address, yet the owner is judged by their own.
    assert (
        attempt(alpha, door, "alpha-owner", OWNER_PASSWORD, HTTP_X_FORWARDED_FOR=OWNER_HOME, **proxy) == "ok"
    )
    # The attacker cannot escape by writing another address in front: the proxy appends the real one.
    spoofed = f"{OWNER_HOME}, {ATTACKER}"
    assert (
        attempt(alpha, door, "alpha-owner", OWNER_PASSWORD, HTTP_X_FORWARDED_FOR=spoofed, **proxy) == "locked"
    )


@pytest.mark.parametrize("door", DOORS)
def test_issue12_d2_forwarded_header_is_ignored_without_a_trusted_proxy(alpha, settings, door):
    assert not settings.ECBAO_TRUSTED_PROXIES and not settings.ECBAO_TRUSTED_PROXY_COUNT
    for n in range(settings.AXES_FAILURE_LIMIT):
        # A new forged X-Forwarded-For each time buys no fresh counter.
        attempt(
            alpha, door, "alpha-owner", "wrong", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}"
        )
    result = attempt(
        alpha, door, "alpha-owner", OWNER_PASSWORD, REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="192.0.2.99"
    )
    assert result == "locked"


@pytest.mark.parametrize("door", DOORS)
def test_issue12_d2_signing_in_between_guesses_does_not_reset_the_address_limit(alpha, settings, door):
    """The reported attack: 12 guesses over 4 users, logging in to one's own account in between."""
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 10
    victims = [f"victim-{i}" for i in range(4)]
    for name in victims:
        make_user(alpha, name, Role.VIEWER)
    make_user(alpha, "insider", Role.VIEWER)
    outcomes = []
    for round_ in range(3):
        for name in victims:
            outcomes.append(attempt(alpha, door, name, f"guess-{round_}", REMOTE_ADDR=ATTACKER))
            attempt(alpha, door, "insider", PASSWORD, REMOTE_ADDR=ATTACKER)  # a success in between
    assert outcomes[:10] == ["failed"] * 10
    assert outcomes[10:] == ["locked", "locked"]
    # The address is refused even for a right password; other addresses are not affected.
    assert attempt(alpha, door, "victim-0", PASSWORD, REMOTE_ADDR=ATTACKER) == "locked"
    assert attempt(alpha, door, "victim-0", PASSWORD, REMOTE_ADDR=OWNER_HOME) == "ok"


def test_issue12_d2_one_tenants_attackers_do_not_lock_another_tenant(alpha, beta, settings):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 3
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(alpha, "page", "shared-name", "wrong", REMOTE_ADDR=ATTACKER)
    assert attempt(alpha, "page", "alpha-owner", OWNER_PASSWORD, REMOTE_ADDR=ATTACKER) == "locked"
    assert attempt(beta, "page", "beta-owner", OWNER_PASSWORD, REMOTE_ADDR=ATTACKER) == "ok"
