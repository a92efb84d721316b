"""The client's address, as seen through this deployment's trusted reverse proxies.

``REMOTE_ADDR`` is the peer that connected to us. Behind a reverse proxy that is the proxy,
and the client's address is in ``X-Forwarded-For``, where each proxy appends the address it
received the request from. Entries to the left of the ones our proxies wrote are chosen by the
client, so they are never believed. Settings (from the environment):

- ``ECBAO_TRUSTED_PROXIES``: networks of our proxies (``10.0.0.0/8,127.0.0.1``). The client is
  the right-most address in the chain that is not one of them; a request whose peer is not a
  trusted proxy is taken at ``REMOTE_ADDR``.
- ``ECBAO_TRUSTED_PROXY_COUNT``: or simply the number of proxies in front of the app; the
  client is that many hops from the right.

With neither set, ``X-Forwarded-For`` is ignored. Used by login throttling (django-axes's
``AXES_CLIENT_IP_CALLABLE``), the address limiter and sign-up throttling.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def _trusted(address, networks) -> bool:
    return any(address in network for network in networks)


def client_ip(request) -> str | None:
    """The client address of ``request`` (a Django or DRF request), or None when unknown."""
    if request is None:
        return None
    meta = request.META
    peer = _parse(meta.get("REMOTE_ADDR") or "")
    if peer is None:
        return None
    networks = _networks(tuple(settings.ECBAO_TRUSTED_PROXIES))
    count = settings.ECBAO_TRUSTED_PROXY_COUNT
    if not networks and not count:
        return str(peer)
    forwarded = [_parse(part) for part in (meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if part.strip()]
    chain = [*forwarded, peer]
    if networks:
        if not _trusted(peer, networks):
            return str(peer)
        for address in reversed(chain):
            if address is None:  # a garbled entry written before our proxies: stop at it
                break
            if not _trusted(address, networks):
                return str(address)
        return str(peer)
    # Count mode: our proxies wrote the last ``count`` hops; the one before them is the client.
    index = len(chain) - 1 - count
    candidate = chain[max(index, 0)]
    return str(candidate) if candidate is not None else str(peer)
