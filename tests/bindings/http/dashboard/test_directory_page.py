"""The Things list in headless Chromium against a real hub: each Thing's type and a few
of its current values, and the hub's own Things in a section of their own, after the
devices, with the devices' pages still whole."""

from __future__ import annotations

import pytest

from tests.support.devices import register, register_all, report

from .conftest import LAMP, desk_lamp_td

pytestmark = pytest.mark.timeout(90)

DASH = "\N{EN DASH}"  # as in the pager: 1-50 of 62
# The hub's own Thing a viewer may read; it lists urn:wothub:clients and urn:wothub:certs
# too, but their TDs are for administrators, so the hub section leaves them out.
HUB_THING = "urn:wothub:authn"


async def test_the_list_shows_types_and_current_values(running, open_dashboard):
    running.add_client("vera", "consumer", "viewer")
    td = desk_lamp_td()
    td["@type"] = ["Light", "saref:LightSwitch"]
    conn = await register(running, td=td)
    await report(conn, "temperature", 21.5)
    await report(conn, "brightness", 40)
    ui = await open_dashboard()
    await ui.login("vera")
    row = ui.page.locator(f'#things-body tr[data-id="{LAMP}"]')
    values = row.locator(".values")
    await values.locator("[data-value=temperature]:has-text('21.5 °C')").wait_for()
    await values.locator("[data-value=brightness]:has-text('40 %')").wait_for()
    assert await row.locator(".type").inner_text() == "Light, saref:LightSwitch"
    await ui.shot("values")

    await report(conn, "temperature", 23.25)  # kept current while the list is shown
    await values.locator("[data-value=temperature]:has-text('23.25 °C')").wait_for()
    assert ui.errors == []


async def test_the_hubs_own_things_have_their_own_section_after_the_devices(
    running, open_dashboard
):
    running.add_client("vera", "consumer", "viewer")
    # devices before and after the hub's ids in id order, and one whose id looks like
    # the hub's but which a device's agent owns (as the demo's do)
    before = [
        desk_lamp_td(f"urn:dev:fleet:{i:03d}", title=f"Street light {i:03d}") for i in range(30)
    ]
    after = [desk_lamp_td(f"urn:x-fleet:{i:03d}", title=f"Park light {i:03d}") for i in range(30)]
    await register_all(running, "fleet", before + after)
    await register(running, td=desk_lamp_td())
    lookalike = "urn:wothub:demo:door"
    await register(running, "demo-door", desk_lamp_td(lookalike, title="Front door"))
    devices = {td["id"] for td in before + after} | {LAMP, lookalike}

    ui = await open_dashboard()
    await ui.login("vera")
    await ui.page.locator(f'#hub-things-body tr[data-id="{HUB_THING}"]').wait_for()
    await ui.page.wait_for_selector(f"#page-range:has-text('1{DASH}50 of 62')")
    first = await ui.page.locator("#things-body tr[data-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    await ui.shot("devices-then-hub")
    order = await ui.page.evaluate(
        "document.querySelector('#things').compareDocumentPosition("
        "document.querySelector('#hub-things')) & Node.DOCUMENT_POSITION_FOLLOWING"
    )
    assert order, "the hub's own Things come after the devices"

    await ui.page.click("#page-next")
    await ui.page.wait_for_selector(f"#page-range:has-text('51{DASH}62 of 62')")
    second = await ui.page.locator("#things-body tr[data-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    assert len(first) == 50 and len(second) == 12
    assert set(first) | set(second) == devices  # every device once, no hub Thing among them
    hub_rows = await ui.page.locator("#hub-things-body tr[data-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    # those a viewer may read: the open ones (authn, groups, queries), not the admins'
    assert hub_rows == [HUB_THING, "urn:wothub:groups", "urn:wothub:queries"]
    assert ui.errors == []
