"""What the after-sales app listens to (wired in ``AftersalesConfig.ready``)."""

from __future__ import annotations


def subscribe() -> None:
    """Filled in by the ingestion work (channels.events.AfterSaleChanged → ingest)."""
