"""The client address behind trusted proxies (ecbao.clientip), as login and sign-up throttling see it."""

import pytest
from django.test import RequestFactory

from ecbao.clientip import client_ip


def request(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


@pytest.mark.parametrize(
    ("proxies", "count", "remote", "forwarded", "expected"),
    [
        # No proxy configured: the header is the client's to write, so it is ignored.
        ([], 0, "203.0.113.5", "198.51.100.1", "203.0.113.5"),
        # Trusted networks: the right-most address that is not one of our proxies.
        (["10.0.0.0/8"], 0, "10.0.0.2", "198.51.100.1", "198.51.100.1"),
        (["10.0.0.0/8"], 0, "10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"),
        (["10.0.0.0/8"], 0, "203.0.113.5", "198.51.100.1", "203.0.113.5"),  # not through our proxy
        (["10.0.0.0/8"], 0, "10.0.0.2", "not-an-ip", "10.0.0.2"),
        (["10.0.0.0/8", "2001:db8::/32"], 0, "2001:db8::1", "2001:db9::7", "2001:db9::7"),
        # A number of hops: the address that many hops from the right.
        ([], 1, "10.0.0.2", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        ([], 2, "10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"),
        ([], 1, "10.0.0.2", None, "10.0.0.2"),
    ],
)
def test_issue12_d2_client_address_comes_only_through_trusted_proxies(
    settings, proxies, count, remote, forwarded, expected
):
    settings.ECBAO_TRUSTED_PROXIES = proxies
    settings.ECBAO_TRUSTED_PROXY_COUNT = count
    assert client_ip(request(remote, forwarded)) == expected
