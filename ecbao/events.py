"""Upward news between layers, without upward imports.

A lower layer defines an event dataclass and publishes it; a higher layer subscribes in its
``AppConfig.ready``. Handlers run after the surrounding transaction commits (so they never
see rolled-back data) and should be small: typically they enqueue a Celery task with ids.

    # channels/events.py (lower layer)
    @dataclass(frozen=True)
    class OrderChanged(Event):
        store_id: int
        platform_order_id: str

    # orders/apps.py (higher layer)
    def ready(self):
        events.subscribe(OrderChanged, orders.tasks.enqueue_ingest)
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base of every event; subclasses are frozen dataclasses of plain values (ids, strings)."""


Handler = Callable[[Event], None]
_handlers: dict[type[Event], list[Handler]] = defaultdict(list)


def subscribe(event_type: type[Event], handler: Handler) -> None:
    if handler not in _handlers[event_type]:
        _handlers[event_type].append(handler)


def unsubscribe(event_type: type[Event], handler: Handler) -> None:
    if handler in _handlers[event_type]:
        _handlers[event_type].remove(handler)


def handlers_for(event_type: type[Event]) -> list[Handler]:
    return [h for cls in event_type.__mro__ if cls in _handlers for h in _handlers[cls]]


def publish(event: Event) -> None:
    """Deliver ``event`` to its subscribers once the current transaction commits."""

    def deliver() -> None:
        for handler in handlers_for(type(event)):
            try:
                handler(event)
            except Exception:  # one failing subscriber must not starve the others
                logger.exception("event handler %r failed for %r", handler, event)

    transaction.on_commit(deliver)
