"""Sign-up is rationed (issue 12, defect 8): a sum after a few tries, a refusal after many, and
a limited number of workspaces per address and per e-mail."""

from django.conf import settings as django_settings
from django.test import Client

from tenants.models import Tenant

HOME = "198.51.100.20"
OTHER = "198.51.100.21"


def browser(ip: str) -> Client:
    return Client(HTTP_HOST=django_settings.ECBAO_BASE_DOMAIN, REMOTE_ADDR=ip)


def form(slug: str, email: str, **extra) -> dict:
    return {
        "name": "Lambda",
        "slug": slug,
        "username": "boss",
        "email": email,
        "password": "Lambda-pass-2026",
        **extra,
    }


def test_issue12_d8_a_sum_is_asked_after_a_few_attempts(db):
    client = browser(HOME)
    assert "answer" not in client.get("/").context["form"].fields
    for _ in range(django_settings.SIGNUP_CHALLENGE_AFTER):  # e.g. a script trying addresses
        assert client.post("/", form("www", "a@lambda.example")).status_code == 200
    page = client.get("/")
    assert "answer" in page.context["form"].fields
    # Without the sum, or with a wrong one, nothing is created.
    assert client.post("/", form("lambda", "a@lambda.example")).status_code == 200
    a, b = client.session["signup_challenge"]
    assert client.post("/", form("lambda", "a@lambda.example", answer=a + b + 1)).status_code == 200
    assert not Tenant.objects.filter(slug="lambda").exists()
    # A person reads the question and answers it.
    a, b = client.session["signup_challenge"]
    done = client.post("/", form("lambda", "a@lambda.example", answer=a + b))
    assert done.status_code == 302 and Tenant.objects.filter(slug="lambda").exists()
    # Another address is not asked.
    assert "answer" not in browser(OTHER).get("/").context["form"].fields


def test_issue12_d8_an_address_is_refused_after_many_attempts(db, settings):
    settings.SIGNUP_CHALLENGE_AFTER = 100
    settings.SIGNUP_ADDRESS_ATTEMPTS = 5
    client = browser(HOME)
    for _ in range(5):
        client.post("/", form("www", "a@lambda.example"))
    refused = client.post("/", form("mu-shop", "a@mu.example"))
    assert refused.status_code == 429 and not Tenant.objects.filter(slug="mu-shop").exists()
    assert browser(OTHER).get("/").status_code == 200


def test_issue12_d8_workspaces_per_email_and_per_address_are_limited(db, settings):
    settings.SIGNUP_CHALLENGE_AFTER = 100
    settings.SIGNUP_CREATIONS_PER_EMAIL = 1
    settings.SIGNUP_CREATIONS_PER_ADDRESS = 1
    assert browser(HOME).post("/", form("nu-one", "boss@nu.example")).status_code == 302
    # The same e-mail (any case) from another address, and another e-mail from the same address.
    again = browser(OTHER).post("/", form("nu-two", "BOSS@nu.example"))
    assert again.status_code == 200 and again.context["form"].non_field_errors()
    other_email = browser(HOME).post("/", form("nu-three", "other@nu.example"))
    assert other_email.status_code == 200 and other_email.context["form"].non_field_errors()
    assert list(Tenant.objects.filter(slug__startswith="nu-").values_list("slug", flat=True)) == ["nu-one"]
