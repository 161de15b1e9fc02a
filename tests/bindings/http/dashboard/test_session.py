"""The dashboard's session in a real browser: the token (3 s here) is refreshed before it
expires, so the page keeps working; when the hub ends the session, the next request
takes the user back to the login with a message saying so."""

from __future__ import annotations

import time

import pytest

from tests.support.devices import register
from tests.waiting import until

from .conftest import LAMP, desk_lamp_td

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def hub_options():
    return {"token_lifetime": {"consumer": 3}}


async def test_tokens_are_refreshed_and_an_ended_session_asks_to_log_in_again(
    running, open_dashboard
):
    running.add_client("vera", "consumer", "viewer")
    conn = await register(running, td=desk_lamp_td())
    ui = await open_dashboard()
    refreshes = []
    ui.page.on(
        "request",
        lambda request: (
            refreshes.append(request) if request.url.endswith("/authn/refresh") else None
        ),
    )
    first_expired = time.time() + 3  # the login's token ends by then (3 s, whole seconds)
    await ui.login("vera")
    await until(lambda: len(refreshes) >= 2 and time.time() > first_expired, 10)
    assert all("token" not in r.url for r in refreshes)
    await ui.page.click(f'tr[data-id="{LAMP}"] a.thing-link')
    await ui.page.wait_for_selector("#thing-title:has-text('Desk lamp')")

    running.hub.auth.update_client("vera", password="a brand new password")  # ends sessions
    await ui.page.goto(running.url + "/#/")
    await ui.page.wait_for_selector("#login-form")
    await ui.page.wait_for_selector("#notice:has-text('log in again')")
    await ui.shot("session-ended")
    await conn.close()
    # the token was never written anywhere a script or a URL would keep it
    storage = await ui.page.evaluate("() => [localStorage.length, sessionStorage.length]")
    assert storage == [0, 0]
    assert (await ui.page.context.cookies()) == []
