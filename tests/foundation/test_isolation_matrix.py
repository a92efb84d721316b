"""The isolation matrix, generated from the URL configuration (issue 12, "must show").

Every URL pattern of a tenant's site (pages and API) is filled with the ids of an object of the
same tenant and of an object of another tenant (whose ids are offset so they name nothing here),
and requested (GET and POST) by each role of the tenant, each role of another tenant (its
session cookie and its API token, replayed at this tenant's host) and anonymously. What may
succeed is derived from ``tenants.accounts.permissions.CAPABILITIES`` and the capability each
view declares (``capability_required``, ``CapabilityRequiredMixin.required_capability``, an API
view's ``read_capability`` / ``write_capability``) — so a new URL is covered without a test of
its own, and a new URL that declares no capability fails here until it is declared or listed
in ``SELF_SERVICE`` with the reason.

Only allowed cells may succeed; every other cell is refused (401, 403, 404, 405, or the login
page); no cell is a server error; another tenant's object is never found. Push endpoints live
on the public site (``ecbao/urls_public.py``) and refuse unsigned requests; that is checked
at the end.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_tenants.utils import schema_context

from tenants.accounts.permissions import CAPABILITIES, TenantStaffAPIPermission
from tests.foundation.world import ROLES, create_world, delete_world

pytestmark = pytest.mark.django_db

# Views without a capability, and why: each is open to anyone or to every signed-in user of the
# tenant (about themselves), and still checked below for server errors and foreign sessions.
SELF_SERVICE = {
    "dashboard:home": "redirects: to the login page, the supplier portal or the dashboard (which checks)",
    "accounts:login": "the login form",
    "accounts:logout": "ends one's own session (not requested: it would end the actors' sessions)",
    "accounts:password_change": "one's own password",
    "accounts:password_change_done": "one's own password",
    "accounts:accept_invitation": "an invitation link: the token in it is the authorisation",
    "suppliers:accept_invite": "a supplier user's invitation link: the token in it is the authorisation",
    "accounts:api_tokens": "one's own API tokens",
    "accounts:api_token_revoke": "one's own API token (others' only with staff.manage, checked inside)",
    "inventory:home": "redirects to the SKU list (which checks)",
    "set_language": "the language cookie",
    "healthz": "liveness probe",
    "api-token": "exchanges a password for a token",
    "api-me": "the signed-in user about themselves",
    "api-schema": "the API schema, for signed-in staff",
    "api-docs": "the API docs, for signed-in staff",
    "api-root": "the list of API endpoints",
}
STR_VALUES = {
    "kind": "buyer_remark",
    "field": "phone",
    "action": "approve",
    "platform": "douyin",
    "token": "no-such-token",
    "digest": "no-such-digest",
    "export_id": "no-such-export",
    "retry_id": "no-such-retry",
    "format": "json",
    "evidence_no": 0,
}
# Which object a path parameter names: by parameter name, or for router ``pk`` by basename.
PARAM_OBJECT = {
    "store_id": "store",
    "message_id": "inbox",
    "sku_id": "sku",
    "goods_id": "goods",
    "listing_id": "listing",
    "user_id": "user",
    "order_id": "order",
    "fulfilment_id": "fulfilment",
    "rule_id": "carrier_rule",
    "sender_id": "sender",
    "batch_id": "ship_batch",
    "parcel_id": "parcel",
    "dispatch_id": "dispatch",
    "supplier_id": "supplier",
    "invitation_id": "supplier_invitation",
    "after_sale_id": "after_sale",
    "action_id": "after_sale_action",
    "receipt_id": "return_receipt",
    "charge_back_id": "charge_back",
}
BASENAME_OBJECT = {
    "user": "user",
    "invitation": "invitation",
    "store": "store",
    "inbox-message": "inbox",
    "sku": "sku",
    "stock-level": "stock_level",
    "ledger-entry": "ledger",
    "listing": "listing",
    "order": "order",
    "adjustment": "ledger",
    "parcel": "parcel",
    "waybill": "waybill",
    "write-back": "write_back",
    "shipping-batch": "ship_batch",
    "carrier-rule": "carrier_rule",
    "supplier": "supplier",
    "supplier-sku": "supplier_sku",
    "supplier-after-sale": "after_sale",
    "charge-back": "charge_back",
}


def _patterns(resolver, prefix="", namespace=""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _patterns(entry, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern) and entry.name:
            yield namespace + entry.name, entry


def _declared(callback, method: str) -> str | None:
    """The capability ``callback`` declares for ``method``; None when it declares none."""
    cls = getattr(callback, "cls", None)
    if cls is not None:  # DRF
        if TenantStaffAPIPermission not in cls.permission_classes:
            return None
        if method == "GET":
            return getattr(cls, "read_capability", "dashboard.view")
        return getattr(cls, "write_capability", None) or "nobody"
    view_class = getattr(callback, "view_class", None)
    if view_class is not None and getattr(view_class, "required_capability", None):
        return view_class.required_capability
    return getattr(callback, "required_capability", None)


def _url(name: str, entry: URLPattern, ids: dict) -> str | None:
    kwargs = {}
    for param in entry.pattern.regex.groupindex:
        if param == "pk":
            basename = name.rsplit("-", 1)[0]
            if basename not in BASENAME_OBJECT:
                return None
            kwargs[param] = ids[BASENAME_OBJECT[basename]]
        elif param in PARAM_OBJECT:
            kwargs[param] = ids[PARAM_OBJECT[param]]
        elif param in STR_VALUES:
            kwargs[param] = STR_VALUES[param]
        else:
            raise AssertionError(f"{name}: no value for path parameter {param!r}; add it to the matrix")
    if "format" in kwargs:
        return None  # the same views as without the suffix
    return reverse(name, urlconf="ecbao.urls_tenant", kwargs=kwargs)


def _refused(response) -> bool:
    if response.status_code in (401, 403, 404, 405):
        return True
    return response.status_code == 302 and "/accounts/login/" in response.get("Location", "")


@pytest.fixture(scope="module")
def worlds(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        for slug in ("iso-a", "iso-b"):
            delete_world(slug)
        own, other = create_world("iso-a", "9201"), create_world("iso-b", "9202", id_base=100_000)
    yield own, other
    with django_db_blocker.unblock():
        for world in (own, other):
            delete_world(world.slug)


def _actor(world, role: str, host: str) -> Client:
    """A client at ``host`` carrying ``world``'s session and token of ``role``."""
    from django.contrib.auth import get_user_model

    client = Client(
        HTTP_HOST=host, HTTP_AUTHORIZATION=f"Token {world.tokens[role]}", raise_request_exception=False
    )
    with schema_context(world.slug.replace("-", "_")):
        client.force_login(
            get_user_model().objects.get(pk=world.users[role]),
            backend="django.contrib.auth.backends.ModelBackend",
        )
    return client


def test_issue12_generated_isolation_matrix(worlds):
    own, other = worlds
    actors = [(f"own {role}", role, _actor(own, role, own.host)) for role in ROLES]
    actors += [(f"other tenant's {role}", None, _actor(other, role, own.host)) for role in ROLES]
    actors.append(("anonymous", None, Client(HTTP_HOST=own.host, raise_request_exception=False)))

    undeclared, failures, cells = [], [], 0
    for name, entry in _patterns(get_resolver("ecbao.urls_tenant")):
        if name == "accounts:logout":
            continue
        targets = [("own", _url(name, entry, own.ids))]
        if any(p in PARAM_OBJECT or p == "pk" for p in entry.pattern.regex.groupindex):
            targets.append(("other tenant's", _url(name, entry, other.ids)))
        if targets[0][1] is None:
            continue
        for method in ("GET", "POST"):
            capability = _declared(entry.callback, method)
            if capability is None and name not in SELF_SERVICE:
                undeclared.append(f"{method} {name}")
            for label, role, client in actors:
                for whose, url in targets:
                    is_api = url.startswith("/api/")
                    response = (
                        client.get(url)
                        if method == "GET"
                        else client.post(url, "{}", content_type="application/json")
                        if is_api
                        else client.post(url, {})
                    )
                    cells += 1
                    cell = (
                        f"{label} {method} {url} ({name}, {capability}) → {response.status_code}"
                        f" {response.get('Location', '')}"
                    )
                    if response.status_code >= 500:
                        failures.append("server error: " + cell)
                        continue
                    if capability is None:
                        continue
                    allowed = role is not None and role in CAPABILITIES.get(capability, ())
                    if not allowed and not _refused(response):
                        failures.append("not refused: " + cell)
                    elif allowed and whose == "other tenant's" and response.status_code < 400:
                        failures.append("other tenant's object reachable: " + cell)
                    elif (
                        allowed
                        and whose == "own"
                        and (
                            response.status_code == 401 or "/accounts/login/" in response.get("Location", "")
                        )
                    ):
                        failures.append("allowed but sent to log in: " + cell)
    assert not undeclared, "views without a declared capability: " + ", ".join(sorted(set(undeclared)))
    assert not failures, f"{len(failures)} of {cells} cells wrong:\n" + "\n".join(failures[:60])
    assert cells > 1000


def test_issue12_push_endpoints_store_nothing_unsigned(public_client):
    """Unsigned pushes are refused (each platform answers in its own acknowledgement format,
    some with HTTP 200): nothing is stored, so nothing can reach any tenant."""
    from channels.routing.models import PushReceipt

    before = PushReceipt.objects.count()
    for platform in ("douyin", "kuaishou", "wechat"):
        for path in (f"/hooks/{platform}/", f"/hooks/{platform}/no-such-app/"):
            response = public_client.post(path, b'{"msg": "forged"}', content_type="application/json")
            assert response.status_code < 500, (path, response.status_code)
    assert PushReceipt.objects.count() == before


PUBLIC_VALUES = {
    "slug": "alpha",
    "platform": "douyin",
    "app_key": "no-such-app",
    "component_appid": "no-such-app",
}


def test_issue12_public_site_urls_answer_anonymous_requests_without_errors(public_client):
    """Every pattern of the public site (sign-up, hooks, OAuth callback, admin, …), GET and POST,
    anonymously: refused or answered, never a server error; the admin only after logging in."""
    public_client.raise_request_exception = False
    requested = 0
    for name, entry in _patterns(get_resolver("ecbao.urls_public")):
        params = list(entry.pattern.regex.groupindex)
        if any(p not in PUBLIC_VALUES for p in params):
            continue  # admin object pages: the admin index below already requires a login
        url = reverse(name, urlconf="ecbao.urls_public", kwargs={p: PUBLIC_VALUES[p] for p in params})
        for response in (public_client.get(url), public_client.post(url, {})):
            requested += 1
            assert response.status_code < 500, (name, url, response.status_code)
            if name.startswith("admin:") and name != "admin:login":
                assert response.status_code in (302, 403, 404, 405), (name, url, response.status_code)
    assert requested > 10
