"""The after-sales API under /api/v1/: each part registers its viewsets here."""

from __future__ import annotations


def register(router) -> None:
    """Called by ecbao.urls_tenant with the tenant API router."""
