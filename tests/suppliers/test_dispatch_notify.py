"""Supplier notifications of dispatches: a signed webhook to a real local HTTP server, retried
with the same delivery id until it is accepted; email in zh-Hans with masks only."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from suppliers import dispatches, notify, tasks
from suppliers.models import Dispatch
from tests.suppliers.dispatch_rig import line, make_world


@pytest.fixture
def world(store, skus):
    yield from make_world(store, skus)


@pytest.fixture
def hook_server():
    """A webhook receiver on 127.0.0.1 that answers the statuses queued in ``answers`` (then 200)."""
    received: list[tuple[dict, bytes]] = []
    answers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(answers.pop(0) if answers else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/ecbao", received, answers
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_is_signed_and_retried_with_the_same_delivery_id(world, hook_server, settings):
    settings.SUPPLIER_WEBHOOK_ALLOW_PRIVATE = True  # the test server listens on loopback
    url, received, answers = hook_server
    world.cup.webhook_url, world.cup.webhook_secret = url, "s3cret-key"
    world.cup.save()
    world.order("N1", line(1, "CUP-1", qty=2, price=4000))
    dispatch = Dispatch.objects.get()

    answers.append(503)  # the supplier's server fails once: the task retries (eagerly here)
    assert tasks.notify_task.apply(args=[dispatch.pk, dispatches.CREATED]).get() is True
    assert len(received) == 2
    for headers, body in received:
        expected = hmac.new(
            b"s3cret-key", headers["x-ecbao-timestamp"].encode() + b"." + body, hashlib.sha256
        )
        assert headers["x-ecbao-signature"] == "sha256=" + expected.hexdigest()
        assert headers["x-ecbao-delivery"] == f"{dispatch.pk}:dispatch.created"
        assert headers["x-ecbao-event"] == "dispatch.created"
    payload = json.loads(received[-1][1])
    assert payload["dispatch"]["id"] == dispatch.pk and payload["dispatch"]["lines"][0]["quantity"] == 2
    assert payload["dispatch"]["receiver"]["phone"] == "138****8888"
    assert "#" not in received[-1][1].decode() and "$tel$" not in received[-1][1].decode()  # no ciphertext
    dispatch.refresh_from_db()
    assert dispatch.notified_at is not None and dispatch.notify_error == ""
    # Sent again (a duplicate task): nothing more goes out.
    assert tasks.notify_task.apply(args=[dispatch.pk, dispatches.CREATED]).get() is False
    assert len(received) == 2


def test_a_failing_webhook_leaves_its_error_visible(world, hook_server, settings):
    settings.SUPPLIER_WEBHOOK_ALLOW_PRIVATE = True
    url, received, answers = hook_server
    world.cup.webhook_url, world.cup.webhook_secret = url, "k"
    world.cup.save()
    world.order("N2", line(1, "CUP-1", qty=1, price=4000))
    dispatch = Dispatch.objects.get()
    answers.extend([500] * 3)
    with pytest.raises(notify.NotifyError):
        notify.notify(dispatch.pk, dispatches.CREATED)
    dispatch.refresh_from_db()
    assert dispatch.notified_at is None and "500" in dispatch.notify_error
    assert tasks.backoff(0) < tasks.backoff(3) <= 1800
    world.cup.webhook_secret = ""  # never unsigned
    world.cup.save()
    with pytest.raises(notify.NotifyError):
        notify.notify(dispatch.pk, dispatches.CREATED)
    assert len(received) == 1


def test_private_addresses_are_refused_and_cancellation_emails_are_masked(world, hook_server):
    url, received, _ = hook_server
    world.cup.webhook_url, world.cup.webhook_secret = url, "k"
    world.cup.notify_email = "ops@jdz.example"
    world.cup.save()
    order = world.order("N3", line(1, "CUP-1", qty=1, price=4000))
    dispatch = Dispatch.objects.get()
    from orders import services as orders

    orders.cancel(order=order, actor=None, reason="buyer asked")
    with pytest.raises(notify.NotifyError):
        notify.notify(dispatch.pk, dispatches.CANCELLED)  # loopback without the setting: refused
    assert received == [] and len(mail.outbox) == 1  # the email went; the webhook did not
    (email,) = mail.outbox
    assert str(dispatch.pk) in email.subject and "拦截" in email.subject
    assert "138****8888" in email.body and "$tel$" not in email.body and "#name#" not in email.body
    assert notify.notify(dispatch.pk, dispatches.CREATED) is False  # overtaken by the cancellation
