"""What a new user (compliance officer, site admin, analyst) met in a first hour with the API: each answer says
what is wrong in the caller's terms, and one kind of mistake gets one kind of answer."""

from __future__ import annotations

from .conftest import LOBBY, auth


def test_an_analyst_at_holds_is_told_it_may_not_use_legal_holds(client, tokens):
    """It read "the analyst role may not use audit endpoints", at an endpoint of legal holds."""
    analyst = auth(tokens["analyst"])
    for method, path, doing in (("get", "/api/v1/holds", "list legal holds"),
                                ("post", "/api/v1/holds?case=x", "place legal holds"),
                                ("post", "/api/v1/holds/abc/release", "release legal holds")):
        answer = getattr(client, method)(path, headers=analyst)
        assert answer.status_code == 403
        assert answer.json["error"]["message"] == f"the analyst role may not {doing}: only the compliance role may"

