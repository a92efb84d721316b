"""Issue 14's "must show": the sealing matrix of the supplier portal, generated from the URL
configuration — every pattern of the tenant's site (pages and API, so a page added later is
covered without a test of its own) is requested, GET and POST, as supplier A's user:

- every merchant page and staff API endpoint → 403 (or 404); a signed-in supplier is never sent
  to the login page, never served (2xx/3xx), never a server error;
- every portal page and supplier-API endpoint naming supplier B's objects (dispatch, batch) →
  404: A never learns whether B's dispatch exists;
- A's session cookie and API token at another tenant's domain → refused on every portal page and
  supplier-API endpoint (the session is unknown there, the token names no user there):
  401/403/404 or the login page;
- no portal response carries a plain phone number unless the merchant granted A the reveal, and
  then each reveal is exactly one decrypt audit row and one ReceiverReveal.

Which is which comes from the capability each view declares (``supplier.portal`` for the portal,
a staff capability for the rest); views declaring none are the foundation's ``SELF_SERVICE`` list
(login, one's own password and tokens, the language cookie, …) and are only required not to fail. The platform's decrypt is a stand-in (as in
test_portal.py); the budget, audit and outflow rows are the real ones.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.urls import get_resolver, reverse

from channels import services as channel_services
from channels.models import DecryptAudit
from logistics import waybills
from logistics.models import Parcel
from suppliers.models import ReceiverReveal
from tenants import services as tenant_services
from tenants.accounts import services as account_services
from tests.foundation.test_isolation_matrix import STR_VALUES, _declared, _patterns
from tests.suppliers.portal_rig import client_for, two_suppliers

pytestmark = pytest.mark.django_db

PLAIN_PHONE = "13812348888"
PHONE = re.compile(rb"(?<![\d*])1[3-9]\d{9}(?!\d)")  # a mainland mobile number, not a mask
MISSING = 987_654_321  # names nothing in this tenant


class PlatformDecrypt:
    """The platform's decrypt answer (the channel layer's budget and audit row stay real)."""

    calls = 0

    def decrypt(self, *, platform_order_id, cipher, account_id):
        PlatformDecrypt.calls += 1
        return {"$tel$": PLAIN_PHONE, "#name#": "张三", "#addr#": "文一西路1号"}[cipher]


@pytest.fixture
def world(alpha, store, skus, monkeypatch, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    monkeypatch.setattr(channel_services, "connector_for", lambda store: PlatformDecrypt())
    PlatformDecrypt.calls = 0
    w = two_suppliers(alpha, store, skus, (1, "TS-WHT-L", 1), (2, "CAP-RED", 2))
    pb = Parcel.objects.get(fulfilment=w["dispatch_b"].fulfilment)
    w["batch_b"] = waybills.start_take([pb.pk], warehouse=w["b"].warehouse)  # B's batch
    w["token_a"] = account_services.issue_api_token(user=w["user_a"], name="sealing")[1]
    # issue 15: an after-sale on each supplier's dispatch (ingested), B's with an evidence file
    from aftersales import supplier as supplier_aftersales
    from tests.aftersales.portal_rig import ingest

    w["after_sale_a"] = ingest(store, w["order_a"], "SEAL-A")
    w["after_sale_b"] = ingest(store, w["order_b"], "SEAL-B")
    png = supplier_aftersales.Evidence("b.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(32))
    supplier_aftersales.answer(w["after_sale_b"], supplier=w["b"], answer="refused", note="B", evidence=[png])
    return w


def _url(name: str, entry, values: dict) -> str | None:
    kwargs = {}
    for param in entry.pattern.regex.groupindex:
        if param in values:
            kwargs[param] = values[param]
        elif param in STR_VALUES:
            kwargs[param] = STR_VALUES[param]
        elif param == "field":
            kwargs[param] = "phone"
        else:  # an object id: a staff page refuses before looking it up; a portal one must 404
            kwargs[param] = values.get("*", MISSING)
    if "format" in kwargs:
        return None  # the same views as without the suffix
    return reverse(name, urlconf="ecbao.urls_tenant", kwargs=kwargs)


def _request(client, method: str, url: str, **extra):
    if method == "GET":
        return client.get(url, **extra)
    if url.startswith("/api/"):
        return client.post(url, "{}", content_type="application/json", **extra)
    return client.post(url, {}, **extra)


def _to_login(response) -> bool:
    return response.status_code == 302 and "/accounts/login/" in response.get("Location", "")


def test_issue14_sealing_matrix(alpha, beta, world):
    a_session = client_for(alpha, world["user_a"])
    a_session.raise_request_exception = False
    from django.test import Client

    a_token = Client(
        HTTP_HOST=tenant_services.domain_for(alpha.slug),
        HTTP_AUTHORIZATION=f"Token {world['token_a']}",
        raise_request_exception=False,
    )
    beta_host = tenant_services.domain_for(beta.slug)
    session_id = a_session.cookies[settings.SESSION_COOKIE_NAME].value
    b_objects = {
        "dispatch_id": world["dispatch_b"].pk,
        "pk": world["dispatch_b"].pk,
        "batch_id": world["batch_b"].pk,
        "after_sale_id": world["after_sale_b"].pk,
    }

    failures, cells, portal_cells, bodies, sealed_names = [], 0, 0, [], set()
    for name, entry in _patterns(get_resolver("ecbao.urls_tenant")):
        if name == "accounts:logout":
            continue  # would end A's session
        # a router's ``pk`` names B's dispatch on the supplier dispatch API only
        values = {k: v for k, v in b_objects.items() if k != "pk"}
        if name.startswith("supplier-dispatch"):
            values = b_objects
        elif name.startswith("supplier-after-sale"):  # the supplier API's after-sales (issue 15)
            values = {**values, "pk": world["after_sale_b"].pk}
        url = _url(name, entry, values)
        if url is None:
            continue
        answered = {}  # (who, how) → statuses of GET and POST: the method the view takes must refuse
        for method in ("GET", "POST"):
            capability = _declared(entry.callback, method)
            self_service = capability is None  # the foundation's matrix lists each with its reason
            portal = capability == "supplier.portal"
            names_b = portal and any(p in values for p in entry.pattern.regex.groupindex)
            clients = [("session", a_session)] + ([("token", a_token)] if url.startswith("/api/") else [])
            for how, client in clients:
                response = _request(client, method, url)
                cells += 1
                status = response.status_code
                cell = f"A's {how} {method} {url} ({name}) → {status} {response.get('Location', '')}"
                if status >= 500:
                    failures.append("server error: " + cell)
                elif self_service:
                    continue  # about oneself (login, password, language, tokens): only no failure
                elif names_b:
                    portal_cells += 1
                    sealed_names.add(name)
                    answered.setdefault(("B's object not 404", how), []).append(status)
                    if status not in (404, 405):  # 405: the other method, refused before any lookup
                        failures.append("B's object not 404: " + cell)
                elif portal:
                    if status in (401, 403) or _to_login(response):
                        failures.append("A refused its own portal: " + cell)
                    if method == "GET" and status == 200 and not response.streaming:
                        bodies.append((url, response.content))
                else:
                    answered.setdefault(("merchant page not refused with 403/404", how), []).append(status)
                    if status not in (403, 404, 405):
                        failures.append("merchant page not refused with 403/404: " + cell)
            # another tenant's domain: A's cookie and token are nobody there (the portal's
            # pages and API; the merchant's refuse A even on its own tenant, above)
            if not portal:
                continue
            for how in ("session", "token"):
                client = Client(raise_request_exception=False)  # beta's answer may drop the cookie
                extra = {"HTTP_HOST": beta_host}
                if how == "session":
                    client.cookies[settings.SESSION_COOKIE_NAME] = session_id
                else:
                    extra["HTTP_AUTHORIZATION"] = f"Token {world['token_a']}"
                response = _request(client, method, url, **extra)
                cells += 1
                if response.status_code >= 500 or not (
                    response.status_code in (401, 403, 404, 405) or _to_login(response)
                ):
                    failures.append(
                        f"another tenant let A in: {how} at beta {method} {url} → {response.status_code}"
                    )
        for (what, how), statuses in answered.items():
            if set(statuses) == {405}:
                failures.append(f"{what}: {how} {url} ({name}) answered only 405 to GET and POST")
    assert not failures, f"{len(failures)} of {cells} cells wrong:\n" + "\n".join(failures[:60])
    assert portal_cells >= 12 and cells > 400, (portal_cells, cells)
    # issue 15: every supplier after-sales page and API endpoint naming B's after-sale was tried
    assert {
        "supplier_aftersales:detail",
        "supplier_aftersales:answer",
        "supplier_aftersales:evidence",
        "supplier-after-sale-detail",
        "supplier-after-sale-answer",
    } <= sealed_names, sealed_names

    # A's own portal pages and API answers, and its dispatch's pages: never a plain phone number
    da = world["dispatch_a"].pk
    for url in (
        f"/supplier/dispatches/{da}/",
        f"/api/v1/supplier/dispatches/{da}/",
        "/api/v1/supplier/dispatches/",
        f"/supplier/aftersales/{world['after_sale_a'].pk}/",
        "/supplier/aftersales/?tab=all",
        f"/api/v1/supplier/after-sales/{world['after_sale_a'].pk}/",
        "/api/v1/supplier/after-sales/",
    ):
        response = a_session.get(url) if url.startswith("/supplier/") else a_token.get(url)
        assert response.status_code == 200, url
        bodies.append((url, response.content))
    assert len(bodies) >= 10
    for url, body in bodies:
        assert not PHONE.search(body), (url, PHONE.search(body).group())
    reveal = f"/supplier/dispatches/{da}/reveal/phone/"
    assert a_session.post(reveal).status_code == 403  # not granted
    assert (PlatformDecrypt.calls, DecryptAudit.objects.count(), ReceiverReveal.objects.count()) == (0, 0, 0)

    # granted: each reveal is one decrypt, one audit row, one outflow record — and the pages
    # still show masks only
    world["a"].may_reveal_receiver = True
    world["a"].save()
    for n in (1, 2):
        response = a_session.post(reveal, REMOTE_ADDR="10.9.8.7")
        assert response.status_code == 200 and PLAIN_PHONE in response.content.decode()
        assert (PlatformDecrypt.calls, DecryptAudit.objects.count(), ReceiverReveal.objects.count()) == (
            n,
            n,
            n,
        )
    assert set(ReceiverReveal.objects.values_list("supplier_id", "dispatch_id", "field", "user_id")) == {
        (world["a"].pk, da, "phone", world["user_a"].pk)
    }
    for url in (f"/supplier/dispatches/{da}/", "/supplier/"):
        assert not PHONE.search(a_session.get(url).content), url
    assert not PHONE.search(a_token.get(f"/api/v1/supplier/dispatches/{da}/").content)
    # B's dispatch stays sealed even for a granted A
    assert a_session.post(f"/supplier/dispatches/{world['dispatch_b'].pk}/reveal/phone/").status_code == 404
    assert PlatformDecrypt.calls == 2
