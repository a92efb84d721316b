"""Reads shared by the Shops / Inbox pages and the API."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from channels.models import InboxMessage, Store, SyncCursor


def stores_with_sync() -> QuerySet[Store]:
    return (
        Store.objects.annotate(
            order_count=Count("order_states", distinct=True),
            failed_messages=Count("inbox", filter=Q(inbox__status=InboxMessage.Status.FAILED), distinct=True),
        )
        .prefetch_related(
            Prefetch("cursors", queryset=SyncCursor.objects.filter(kind=SyncCursor.Kind.ORDERS))
        )
        .order_by("platform", "name")
    )


def order_cursor(store: Store) -> SyncCursor | None:
    return store.cursors.filter(kind=SyncCursor.Kind.ORDERS).first()


def inbox(*, status: str = "", platform: str = "", store_id: int | None = None) -> QuerySet[InboxMessage]:
    qs = InboxMessage.objects.select_related("store").order_by("-received_at", "-id")
    if status:
        qs = qs.filter(status=status)
    if platform:
        qs = qs.filter(platform=platform)
    if store_id:
        qs = qs.filter(store_id=store_id)
    return qs


def inbox_counts() -> dict[str, int]:
    rows = InboxMessage.objects.values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}
