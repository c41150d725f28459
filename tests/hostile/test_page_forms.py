"""The pages' forms, signed in or not, with a valid CSRF token: a NUL in any field is a
400 page (PostgreSQL cannot store or compare one), never a 500."""

from __future__ import annotations

import re

import httpx

from instance import LiveInstance


def csrf_token(client: httpx.Client) -> str:
    page = client.get("/login").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the sign-in page carries no CSRF token"
    return match.group(1)


def test_a_nul_in_a_page_form_is_a_400_page(hostile: LiveInstance) -> None:
    with httpx.Client(base_url=hostile.url, timeout=10) as client:
        token = csrf_token(client)
        for path, fields in [
            ("/login", {"email": "a\x00@example.com", "password": "x"}),
            ("/login", {"token": "t\x00"}),
            ("/status/subscribe", {"email": "a\x00@example.com"}),
        ]:
            answer = client.post(path, data={**fields, "csrf_token": token})
            assert answer.status_code == 400, (path, answer.text[:300])
            assert "NUL" in answer.text
        # The same form without the NUL is handled as usual.
        answer = client.post("/login", data={"token": "wrong", "csrf_token": token})
        assert answer.status_code == 401
