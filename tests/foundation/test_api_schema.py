"""The API does what its schema says (issue 12, defect 11): the small cases the fuzz found."""

import pytest

from tests.conftest import api_key


@pytest.fixture
def call(alpha, alpha_client):
    auth = {"HTTP_AUTHORIZATION": f"Token {api_key(alpha, 'alpha-owner')}"}

    def call(path, **kwargs):
        return alpha_client.get(path, **auth, **kwargs)

    return call


@pytest.mark.parametrize("size", ["-908190708", "0", "201", "1.5", "x", ""])
def test_issue12_d11_page_size_outside_the_range_is_refused(call, size):
    for path in ("/api/v1/users/", "/api/v1/orders/"):
        response = call(f"{path}?page_size={size}")
        assert response.status_code == 400 and "page_size" in response.json()["error"]["details"]


def test_issue12_d11_floats_empty_enums_and_loose_booleans_are_refused(call):
    assert call("/api/v1/orders/?paid_min_fen=1.5").status_code == 400
    assert call("/api/v1/orders/?paid_min_fen=100").status_code == 200
    assert call("/api/v1/orders/?status=").status_code == 400
    assert call("/api/v1/users/?role=").status_code == 400
    assert call("/api/v1/users/?is_active=0.97").status_code == 400
    assert call("/api/v1/users/?is_active=true").status_code == 200
    # An id that matches nothing is an empty page, not an error; a huge one too.
    assert call("/api/v1/inbox/?store=9223372036854775807").json()["results"] == []


def test_issue12_d11_form_data_is_refused_where_json_is_expected(alpha, alpha_client):
    auth = {"HTTP_AUTHORIZATION": f"Token {api_key(alpha, 'alpha-owner')}"}
    form = alpha_client.post("/api/v1/invitations/", {"email": "a@b.example", "role": "viewer"}, **auth)
    assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"


def test_issue12_d11_schema_documents_errors_and_nullable_fields(call):
    schema = call("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    assert "ErrorEnvelope" in components
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                assert {"400", "404"} <= set(operation["responses"]), (method, path)
    assert components["LedgerEntry"]["properties"]["username"]["nullable"] is True
    assert components["OrderEvent"]["properties"]["actor_username"]["nullable"] is True
    assert components["ReviewRule"]["properties"]["updated_at"]["nullable"] is True
    assert "format" not in components["User"]["properties"]["email"]
    assert components["Invitation"]["properties"]["invite_token"]["nullable"] is True
    page_size = next(
        p for p in schema["paths"]["/api/v1/users/"]["get"]["parameters"] if p["name"] == "page_size"
    )
    assert page_size["schema"]["minimum"] == 1 and page_size["schema"]["maximum"] == 200


def test_issue12_d11_invitation_list_has_invite_token_null(alpha, alpha_client, call):
    auth = {"HTTP_AUTHORIZATION": f"Token {api_key(alpha, 'alpha-owner')}"}
    created = alpha_client.post(
        "/api/v1/invitations/",
        {"email": "a@b.example", "role": "viewer"},
        content_type="application/json",
        **auth,
    )
    assert created.status_code == 201 and created.json()["invite_token"]
    listed = call("/api/v1/invitations/").json()["results"]
    assert listed and all("invite_token" in row and row["invite_token"] is None for row in listed)
