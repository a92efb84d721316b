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
    assert alpha_client.get("/").status_code == 302  # sent to the portal
    assert alpha_client.get("/accounts/staff/").status_code == 403
    assert alpha_client.get("/api/v1/users/").status_code == 403
    assert alpha_client.get("/accounts/supplier/").status_code == 200


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
