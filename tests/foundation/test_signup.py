import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from tenants import services
from tenants.models import Domain, Tenant
from tests.conftest import tenant_client


def schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [name])
        return cursor.fetchone() is not None


def test_signup_page_creates_tenant_schema_and_owner(public_client):
    response = public_client.post(
        "/",
        {
            "name": "Gamma 商贸",
            "slug": "gamma-shop",
            "username": "boss",
            "email": "boss@gamma.example",
            "password": "Gamma-pass-2026",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == "/signup/done/gamma-shop/"
    tenant = Tenant.objects.get(slug="gamma-shop")
    assert tenant.schema_name == "gamma_shop" and schema_exists("gamma_shop")
    assert Domain.objects.get(tenant=tenant).domain == "gamma-shop.localhost"

    done = public_client.get(response["Location"])
    assert "http://gamma-shop.localhost" in done.content.decode()

    client = tenant_client(tenant)
    login = client.post("/accounts/login/", {"username": "boss", "password": "Gamma-pass-2026"})
    assert login.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert "Gamma 商贸" in home.content.decode()


@pytest.mark.parametrize(
    ("slug", "code"),
    [
        ("ab", "length"),
        ("x" * 31, "length"),
        ("Bad_Slug", "characters"),
        ("9lives", "characters"),
        ("a--b", "characters"),
        ("www", "reserved"),
        ("admin", "reserved"),
        ("pg-data", "reserved"),
        ("alpha", "taken"),
    ],
)
def test_slug_validation_rejects_bad_addresses(db, slug, code):
    with pytest.raises(ValidationError) as excinfo:
        services.validate_slug(slug)
    assert excinfo.value.code == code


def test_signup_form_shows_errors_and_creates_nothing(public_client):
    response = public_client.post(
        "/", {"name": "X", "slug": "www", "username": "u", "password": "Good-pass-2026"}
    )
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not Tenant.objects.filter(name="X").exists()


def test_failed_signup_leaves_no_half_made_tenant(db):
    # The owner username is invalid: this fails after the schema was created and migrated.
    with pytest.raises(ValidationError):
        services.create_tenant(
            slug="delta", name="Delta", owner_username="has space", owner_password="Delta-pass-2026"
        )
    assert not Tenant.objects.filter(slug="delta").exists()
    assert not Domain.objects.filter(domain="delta.localhost").exists()
    assert not schema_exists("delta")


def test_weak_owner_password_rejected_before_anything_is_created(db):
    with pytest.raises(ValidationError):
        services.create_tenant(slug="epsilon", name="Eps", owner_username="boss", owner_password="123")
    assert not Tenant.objects.filter(slug="epsilon").exists()
    assert not schema_exists("epsilon")


def test_management_command_creates_lists_and_deletes(db, capsys):
    from django.core.management import call_command

    call_command(
        "tenants", "create", "zeta", "--name", "Zeta", "--owner", "z", "--password", "Zeta-pass-2026"
    )
    assert schema_exists("zeta")
    call_command("tenants", "list")
    out = capsys.readouterr().out
    assert "zeta" in out and "alpha" in out
    call_command("tenants", "delete", "zeta", "--yes")
    assert not Tenant.objects.filter(slug="zeta").exists()
    assert not schema_exists("zeta")
