"""RFC 9457 problem details, as the hub answers every refused HTTP request."""

from __future__ import annotations

import json

PROBLEM = "application/problem+json"


async def problem_of(response, status: int, *, detail: bool = True) -> dict:
    """The problem document of an aiohttp ``response``, checked: the status (also in the
    body), the media type, UTF-8, a ``type`` and a ``title``, and a ``detail`` unless
    ``detail`` is False (a refusal that has nothing to add to its title)."""
    body = await response.read()
    assert response.status == status, body
    assert response.content_type == PROBLEM, (response.content_type, body)
    assert response.charset in (None, "utf-8")
    problem = json.loads(body.decode("utf-8"))
    assert problem["status"] == status
    assert isinstance(problem["type"], str) and problem["type"]
    assert isinstance(problem["title"], str) and problem["title"]
    if detail:
        assert isinstance(problem["detail"], str) and problem["detail"]
    return problem
