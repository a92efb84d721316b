"""Buyer data: one field decrypted through the platform for one person, within the shop's
daily budget, with an audit row either way; the plain text is stored nowhere."""

import pytest
from django.db import connection

from channels import services
from channels.models import DecryptAudit, OrderSnapshot
from tenants.accounts.models import Role
from tests.channels.test_sync_pull import rig, store  # noqa: F401 - fixtures (sandbox Douyin shop)
from tests.conftest import make_user


def test_decrypt_returns_the_plain_text_writes_an_audit_row_and_stops_at_the_budget(rig, store, alpha):  # noqa: F811
    order = rig.order()
    operator = make_user(alpha, "decrypter", Role.OPERATOR)
    connection.set_tenant(alpha)
    connector = rig.connector(store)
    channel_order = connector.get_order(order.order_id)
    services.store_order_version(store=store, order=channel_order, payload=channel_order.raw, source="pull")
    cipher = channel_order.receiver.phone.cipher
    assert cipher and order.receiver.phone not in str(channel_order.raw)

    store.settings = {"decrypt_daily_budget": 1}
    store.save()
    plain = services.decrypt_receiver_field(
        store=store,
        platform_order_id=order.order_id,
        field="phone",
        cipher=cipher,
        user=operator,
        ip="10.1.2.3",
        connector=connector,
    )
    assert plain == order.receiver.phone
    audit = DecryptAudit.objects.get()
    assert (audit.username, audit.field, audit.ip, audit.succeeded) == (
        "decrypter",
        "phone",
        "10.1.2.3",
        True,
    )
    with pytest.raises(services.DecryptRefused):
        services.decrypt_receiver_field(
            store=store,
            platform_order_id=order.order_id,
            field="phone",
            cipher=cipher,
            user=operator,
            ip="10.1.2.3",
            connector=connector,
        )
    assert DecryptAudit.objects.filter(succeeded=False, error__contains="budget").count() == 1
    # The plain text went to the caller only.
    assert not OrderSnapshot.objects.filter(payload__icontains=order.receiver.phone).exists()
    with pytest.raises(ValueError):
        services.decrypt_receiver_field(
            store=store,
            platform_order_id=order.order_id,
            field="email",
            cipher=cipher,
            user=operator,
            ip=None,
            connector=connector,
        )
