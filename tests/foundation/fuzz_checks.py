"""Schemathesis checks of our own (loaded by the fuzz run through SCHEMATHESIS_HOOKS).

``foreign_token_refused``: every request the API answered with success for a user of tenant
A is sent again, unchanged, with the token of tenant B's owner at A's host — it must be
refused with 401 (a token of one tenant means nothing at another).
"""

from __future__ import annotations

import os

import requests
import schemathesis


@schemathesis.check
def foreign_token_refused(ctx, response, case):
    foreign = os.environ.get("ECBAO_FUZZ_FOREIGN_TOKEN")
    if not foreign or not 200 <= response.status_code < 300 or case.path == "/api/v1/auth/token/":
        return None
    kwargs = case.as_transport_kwargs(
        base_url=os.environ["ECBAO_FUZZ_BASE_URL"],
        headers={"Host": os.environ["ECBAO_FUZZ_HOST"], "Authorization": f"Token {foreign}"},
    )
    kwargs.pop("session", None)
    probe = requests.request(**kwargs, timeout=30, allow_redirects=False)
    if probe.status_code != 401:
        raise AssertionError(
            f"Another tenant's token was answered {probe.status_code} (expected 401) "
            f"for {case.method} {case.formatted_path}"
        )
    return True
