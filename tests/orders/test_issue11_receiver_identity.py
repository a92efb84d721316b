"""Issue 11 d14/d15: orders merge only on a receiver identity the platform gives; a
re-encrypted identical address is not an address change."""

from __future__ import annotations

from dataclasses import replace

from channels.types import CipherField, Receiver
from orders import selectors, services
from orders.models import Fulfilment, Order, OrderStatus
from tests.orders.conftest import channel_order, later


def masked_receiver(*, name="#c-name#", phone="$c-tel$", address="#c-addr#", identity="", district="西湖区"):
    """What WeChat (no hash_code) or Kuaishou give: masks (+ ciphertexts), no identity."""
    return Receiver(
        CipherField(name, "张*"),
        CipherField(phone, "138****8888"),
        CipherField(address, "文***号"),
        "浙江省",
        "杭州市",
        district,
        identity=identity,
    )


def fulfilments_of(*orders: Order) -> set[int]:
    return set(Fulfilment.objects.filter(lines__order_line__order__in=orders).values_list("pk", flat=True))


def test_issue11_d14_two_buyers_in_one_county_without_identity_are_not_merged(in_alpha, store, skus):
    # Two different buyers whose masks and region happen to coincide (common: 张*, 138****8888).
    one = services.ingest_channel_order(
        store=store, co=channel_order(oid="W1", receiver=masked_receiver(name="#a#", phone="$a$"))
    )
    two = services.ingest_channel_order(
        store=store, co=channel_order(oid="W2", receiver=masked_receiver(name="#b#", phone="$b$"))
    )
    assert one.status == two.status == OrderStatus.APPROVED
    assert len(fulfilments_of(one, two)) == 2
    for order in (one, two):
        events = selectors.order_events(order)
        (why,) = [e for e in events if e.kind == services.NOT_MERGED]
        assert why.label == str(selectors.EVENT_LABELS[services.NOT_MERGED])  # says why, zh-Hans in the UI


def test_issue11_d14_set_based_path_does_not_merge_without_identity(in_alpha, store, skus):
    empty = Receiver(CipherField(), CipherField(), CipherField())  # a Kuaishou order without address
    services.ingest_batch(
        store=store,
        items=[(channel_order(oid=oid, receiver=empty), None) for oid in ("K1", "K2", "K3")],
    )
    orders = list(Order.objects.filter(platform_order_id__in=["K1", "K2", "K3"]))
    assert len(orders) == 3 and len(fulfilments_of(*orders)) == 3
    assert all(o.events.filter(kind=services.NOT_MERGED).exists() for o in orders)


def test_issue11_d14_orders_with_one_platform_identity_are_merged(in_alpha, store, skus):
    one = services.ingest_channel_order(
        store=store, co=channel_order(oid="H1", receiver=masked_receiver(name="#a#", identity="hash-1"))
    )
    two = services.ingest_channel_order(
        store=store, co=channel_order(oid="H2", receiver=masked_receiver(name="#b#", identity="hash-1"))
    )
    assert len(fulfilments_of(one, two)) == 1
    assert not one.events.filter(kind=services.NOT_MERGED).exists()


def test_issue11_d15_reencrypted_identical_address_is_not_an_address_change(in_alpha, store, skus):
    first = channel_order(oid="D1", receiver=masked_receiver(name="##x*1#1##", identity="oaid-9"))
    order = services.ingest_channel_order(store=store, co=first)
    again = later(first, receiver=masked_receiver(name="##y*2#1##", phone="$$z*3$1$$", identity="oaid-9"))
    order = services.ingest_channel_order(store=store, co=again)
    assert not order.address_changed
    # without an identity the masks decide: same masks, new ciphertexts → no change …
    bare = channel_order(oid="D2", receiver=masked_receiver(name="##p*1#1##"))
    services.ingest_channel_order(store=store, co=bare)
    order = services.ingest_channel_order(
        store=store, co=later(bare, receiver=masked_receiver(name="##q*2#1##"))
    )
    assert not order.address_changed
    # … and a new district is one
    moved = later(bare, seconds=120, receiver=masked_receiver(name="##r*3#1##", district="上城区"))
    order = services.ingest_channel_order(store=store, co=moved)
    assert order.address_changed


def test_issue11_d15_identity_change_is_an_address_change(in_alpha, store, skus):
    first = channel_order(oid="D3", receiver=masked_receiver(identity="oaid-1"))
    services.ingest_channel_order(store=store, co=first)
    order = services.ingest_channel_order(
        store=store, co=later(first, receiver=replace(first.receiver, identity="oaid-2"))
    )
    assert order.address_changed
