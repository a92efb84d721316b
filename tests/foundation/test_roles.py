import pytest
from django_tenants.utils import schema_context

from tenants.accounts.models import Invitation, Role
from tenants.accounts.permissions import CAPABILITIES, has_capability
from tests.conftest import OWNER_PASSWORD, make_user

PASSWORD = "Staff-pass-2026"


def login(client, username, password=PASSWORD):
    response = client.post("/accounts/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content.decode()[:500]
    return response


@pytest.mark.parametrize(
    ("role", "home", "staff_page"),
    [
        (Role.OWNER, 200, 200),
        (Role.OPERATOR, 200, 403),
        (Role.WAREHOUSE, 200, 403),
        (Role.FINANCE, 200, 403),
        (Role.VIEWER, 200, 403),
    ],
)
def test_staff_roles_reach_dashboard_only_owner_manages_staff(alpha, alpha_client, role, home, staff_page):
    make_user(alpha, f"u-{role}", role)
    login(alpha_client, f"u-{role}")
    assert alpha_client.get("/").status_code == home
    assert alpha_client.get("/accounts/staff/").status_code == staff_page


def test_supplier_is_denied_the_merchant_dashboard(alpha, alpha_client):
    make_user(alpha, "supplier-1", Role.SUPPLIER)
    response = login(alpha_client, "supplier-1")
    assert response["Location"] == "/accounts/supplier/"
    assert alpha_client.get("/")["Location"] == "/supplier/"  # sent to the portal
    assert alpha_client.get("/accounts/staff/").status_code == 403
    assert alpha_client.get("/api/v1/users/").status_code == 403
    assert alpha_client.get("/accounts/supplier/")["Location"] == "/supplier/"


def test_anonymous_is_sent_to_login(alpha_client):
    response = alpha_client.get("/accounts/staff/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_capabilities_are_checked_only_inside_a_tenant(alpha):
    user = make_user(alpha, "op", Role.OPERATOR)
    assert not has_capability(user, "orders.manage")  # public schema: no tenant, no capability
    with schema_context(alpha.schema_name):
        assert has_capability(user, "orders.manage")
        assert not has_capability(user, "staff.manage")
        with pytest.raises(ValueError):
            has_capability(user, "no.such.capability")


def test_every_role_has_a_defined_set_of_capabilities():
    for role in Role.values:
        held = {cap for cap, roles in CAPABILITIES.items() if role in roles}
        assert held, role
    assert {cap for cap, roles in CAPABILITIES.items() if Role.SUPPLIER in roles} == {"supplier.portal"}


def test_owner_invites_staff_who_joins_with_the_invited_role(alpha, alpha_client):
    login(alpha_client, "alpha-owner", OWNER_PASSWORD)
    response = alpha_client.post(
        "/accounts/staff/", {"email": "packer@alpha.example", "role": Role.WAREHOUSE}
    )
    assert response.status_code == 200
    link = response.context["invite_link"]
    assert link.startswith("http://alpha.localhost/accounts/invite/")
    path = link.removeprefix("http://alpha.localhost")

    from django.test import Client

    newcomer = Client(HTTP_HOST="alpha.localhost")
    joined = newcomer.post(path, {"username": "packer", "password1": PASSWORD, "password2": PASSWORD})
    assert joined.status_code == 302
    assert newcomer.get("/").status_code == 200
    with schema_context(alpha.schema_name):
        from django.contrib.auth import get_user_model

        assert get_user_model().objects.get(username="packer").role == Role.WAREHOUSE
        assert Invitation.objects.get(email="packer@alpha.example").accepted_at is not None
    # The link works once.
    assert Client(HTTP_HOST="alpha.localhost").get(path).status_code == 404


def test_password_change(alpha, alpha_client):
    make_user(alpha, "changer", Role.OPERATOR)
    login(alpha_client, "changer")
    response = alpha_client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": "Brand-new-2026", "new_password2": "Brand-new-2026"},
    )
    assert response.status_code == 302
    alpha_client.post("/accounts/logout/")
    login(alpha_client, "changer", "Brand-new-2026")


def test_logout_ends_the_session(alpha, alpha_client):
    login(alpha_client, "alpha-owner", OWNER_PASSWORD)
    assert alpha_client.post("/accounts/logout/").status_code == 302
    assert alpha_client.get("/").status_code == 302


# --- issue 12, defect 4: capabilities of their own, and managing staff ---------------------------


def _client_as(tenant, username, password=PASSWORD):
    from tests.conftest import tenant_client

    client = tenant_client(tenant)
    login(client, username, password)
    return client


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.OWNER, True),
        (Role.OPERATOR, True),
        (Role.WAREHOUSE, False),
        (Role.FINANCE, False),
        (Role.VIEWER, False),
    ],
)
def test_issue12_d4_exports_users_and_snapshots_need_their_own_capability(alpha, role, allowed):
    from tests.conftest import api_key

    username = "alpha-owner" if role == Role.OWNER else f"r-{role}"
    if role != Role.OWNER:
        make_user(alpha, username, role)
    client = _client_as(alpha, username, OWNER_PASSWORD if role == Role.OWNER else PASSWORD)
    sku_export = client.get("/inventory/skus/export/")
    assert (sku_export.status_code == 200) is allowed and (sku_export.status_code == 403) is not allowed
    order_export = client.post("/orders/export/", {"filter_query": ""})
    assert (order_export.status_code == 403) is not allowed
    auth = {"HTTP_AUTHORIZATION": f"Token {api_key(alpha, username)}"}
    # Raw platform snapshots: the capability is checked before the order is looked up.
    snapshots = client.get("/api/v1/orders/999999/snapshots/", **auth)
    assert snapshots.status_code == (404 if allowed else 403)
    # The user list with e-mails is for owners only; /me stays for everyone.
    users = client.get("/api/v1/users/", **auth)
    assert users.status_code == (200 if role == Role.OWNER else 403)
    assert client.get("/api/v1/me/", **auth).status_code == 200


def test_issue12_d4_owner_changes_roles_and_deactivates_but_never_the_last_owner(alpha, alpha_client):
    from django.contrib.auth import get_user_model

    from tests.conftest import api_key

    make_user(alpha, "clerk", Role.VIEWER)
    clerk_key = api_key(alpha, "clerk")
    clerk = _client_as(alpha, "clerk")
    owner = _client_as(alpha, "alpha-owner", OWNER_PASSWORD)
    with schema_context(alpha.schema_name):
        users = get_user_model().objects
        clerk_id, owner_id = users.get(username="clerk").pk, users.get(username="alpha-owner").pk
    # Page: promote the clerk to operator, then deactivate: their session and token stop working.
    owner.post(f"/accounts/staff/{clerk_id}/", {"action": "role", "role": Role.OPERATOR})
    with schema_context(alpha.schema_name):
        assert users.get(pk=clerk_id).role == Role.OPERATOR
    assert clerk.get("/").status_code == 200
    owner.post(f"/accounts/staff/{clerk_id}/", {"action": "deactivate"})
    assert clerk.get("/").status_code == 302  # signed out
    assert clerk.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {clerk_key}").status_code == 401
    assert tenant_login_fails(alpha, "clerk")
    # The only owner can neither demote nor deactivate themselves …
    page = owner.post(f"/accounts/staff/{owner_id}/", {"action": "role", "role": Role.VIEWER}, follow=True)
    assert "最后" in page.content.decode() or "last" in page.content.decode()
    owner.post(f"/accounts/staff/{owner_id}/", {"action": "deactivate"})
    with schema_context(alpha.schema_name):
        me = users.get(pk=owner_id)
        assert me.role == Role.OWNER and me.is_active
    # … also not through the API; once a second owner exists, they may step down.
    auth = {"HTTP_AUTHORIZATION": f"Token {api_key(alpha, 'alpha-owner')}"}
    refused = owner.patch(
        f"/api/v1/users/{owner_id}/", {"role": "viewer"}, content_type="application/json", **auth
    )
    assert refused.status_code == 400
    ok = owner.patch(
        f"/api/v1/users/{clerk_id}/",
        {"role": "owner", "is_active": True},
        content_type="application/json",
        **auth,
    )
    assert ok.status_code == 200 and ok.json()["role"] == "owner" and ok.json()["is_active"]
    step_down = owner.patch(
        f"/api/v1/users/{owner_id}/", {"role": "finance"}, content_type="application/json", **auth
    )
    assert step_down.status_code == 200 and step_down.json()["role"] == "finance"
    # A non-owner cannot manage staff.
    assert (
        owner.patch(
            f"/api/v1/users/{clerk_id}/", {"is_active": False}, content_type="application/json", **auth
        ).status_code
        == 403
    )


def tenant_login_fails(tenant, username, password=PASSWORD) -> bool:
    from tests.conftest import tenant_client

    return (
        tenant_client(tenant)
        .post("/accounts/login/", {"username": username, "password": password})
        .status_code
        == 200
    )
