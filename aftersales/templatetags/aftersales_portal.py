"""The supplier portal's 售后 badge (``suppliers`` templates may not import ``aftersales``
code, so the count comes through this tag)."""

from __future__ import annotations

from django import template

from aftersales import supplier as service

register = template.Library()


@register.simple_tag
def supplier_aftersales_waiting(supplier) -> int:
    """After-sales on ``supplier``'s dispatches waiting for its answer (0 without a supplier)."""
    return service.waiting_count(supplier)
