"""The dashboard end to end in headless Chromium against a real hub: log in, Things
appearing and going on- and offline live, property values streaming in, an action for an
offline device going from pending to completed, what a viewer is not offered, and an
administrator issuing, generating and revoking certificates."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from bucketstore import open_store
from certs import CertificateAuthority
from tests.support.devices import AGENT, answer, emit, register, register_all, report

from .conftest import LAMP, desk_lamp_td, thing_hash, trusting

pytestmark = pytest.mark.timeout(90)

DASH = "\N{EN DASH}"  # as in the pager: 1-50 of 61


async def test_the_browser_trusts_the_hub_ca_and_no_other(running, browser, launch, tmp_path):
    """The browser tests check the hub's certificate (the hub CA's key is trusted, no
    HTTPS error is ignored): trusting another CA's key, Chromium refuses the hub."""
    from playwright.async_api import Error as PlaywrightError  # after the browser's checks

    page = await (await browser.new_context()).new_page()
    assert (await page.goto(running.url + "/")).ok
    with open_store(tmp_path / "other-store", "memory") as store:
        other = CertificateAuthority.load_or_create(tmp_path / "other-ca", store.bucket("c"))
        distrusting = await launch(trusting(other.ca_cert_pem))
    page = await (await distrusting.new_context()).new_page()
    with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
        await page.goto(running.url + "/")


async def test_login_and_see_a_thing_appear_and_go_offline(running, open_dashboard):
    running.add_client("vera", "consumer", "viewer")
    ui = await open_dashboard()
    await ui.open()
    await ui.page.wait_for_selector("#login-form")
    await ui.page.fill("#login-id", "vera")
    await ui.page.fill("#login-password", "wrong password")
    await ui.page.click("#login-form button[type=submit]")
    await ui.page.wait_for_selector("#login-message:has-text('Wrong client id or password')")
    await ui.shot("login-refused")

    await ui.login("vera")
    await ui.page.wait_for_selector("#live-state.on")
    await ui.page.wait_for_selector('tr[data-id="urn:wothub:authn"]')  # the hub's own
    await ui.shot("empty-directory")

    conn = await register(running, td=desk_lamp_td())  # the Thing appears without a reload
    row = ui.page.locator(f'tr[data-id="{LAMP}"]')
    await row.locator("text=Desk lamp").wait_for()
    await row.locator(".presence.online").wait_for()
    assert await row.locator(".owner").inner_text() == AGENT
    assert "Light" in await row.inner_text()
    await ui.shot("thing-appeared")

    await conn.close()  # the agent goes away: presence follows
    await row.locator(".presence.offline:has-text('last seen')").wait_for()
    await ui.shot("thing-offline")
    assert ui.errors == []


async def test_property_values_stream_in_with_units_chart_and_desired(running, open_dashboard):
    running.add_client("mona", "consumer", "manager")
    conn = await register(running, td=desk_lamp_td())
    await report(conn, "temperature", 21.5)
    await report(conn, "brightness", 40)
    ui = await open_dashboard()
    await ui.login("mona")
    await ui.page.click(f'tr[data-id="{LAMP}"] a.thing-link')
    await ui.page.wait_for_selector("#thing-title:has-text('Desk lamp')")
    temperature = ui.page.locator('[data-property="temperature"]')
    await temperature.locator(".value:has-text('21.5')").wait_for()
    assert "°C" in await temperature.locator(".reading").inner_text()
    assert "reported" in await temperature.locator(".timestamp").inner_text()
    assert await temperature.locator("form").count() == 0  # read-only: no write form
    await ui.page.wait_for_selector("#live-state.on")

    for value in (22.0, 23.25, 22.5):  # live, without a reload
        await report(conn, "temperature", value)
        await temperature.locator(f".value:text-is('{value:g}')").wait_for()
    await temperature.locator('.history-chart[data-points="4"]').wait_for()
    await emit(conn, "overheated", 80.5)
    await ui.page.locator("#event-log li[data-event='overheated']:has-text('80.5')").wait_for()

    # a write checked in the browser first, then queued for the device (offline now)
    await conn.close()
    brightness = ui.page.locator('[data-property="brightness"]')
    await brightness.locator("input").fill("150")
    await brightness.locator("button[type=submit]").click()
    await brightness.locator(".field-error:has-text('at most 100')").wait_for()
    await brightness.locator("input").fill("75")
    await brightness.locator("button[type=submit]").click()
    await brightness.locator(".desired:has-text('75')").wait_for()
    assert "40" in await brightness.locator(".value").inner_text()
    await ui.shot("write-pending")

    conn = await running.device(AGENT)  # back: the write is delivered, reported, desired cleared
    delivered = await conn.next_request(10)
    assert (delivered.name, delivered.input) == ("brightness", 75)
    await answer(conn, delivered, status="completed")
    await report(conn, "brightness", 75)
    await brightness.locator(".value:text-is('75')").wait_for()
    await brightness.locator(".desired").wait_for(state="hidden")
    await ui.shot("values")
    assert ui.errors == []


async def test_action_for_an_offline_agent_goes_from_pending_to_completed(running, open_dashboard):
    running.add_client("otto", "consumer", "operator")
    conn = await register(running, td=desk_lamp_td())
    await conn.close()  # offline: the request waits in the hub
    ui = await open_dashboard()
    await ui.login("otto")
    await ui.page.goto(running.url + thing_hash())
    fade = ui.page.locator('[data-action="fade"]')
    await fade.locator("button[type=submit]").click()  # "to" is required: the browser says so
    await fade.locator('[data-field="to"] .field-error:has-text("required")').wait_for()
    await fade.locator('[data-field="to"] input').fill("30")
    await fade.locator('[data-field="seconds"] input').fill("-1")
    await fade.locator("button[type=submit]").click()
    await fade.locator('[data-field="seconds"] .field-error:has-text("at least 0")').wait_for()
    await fade.locator('[data-field="seconds"] input').fill("2")
    await fade.locator("button[type=submit]").click()
    await fade.locator(".form-message:has-text('Queued')").wait_for()
    row = ui.page.locator("#requests-body tr[data-request]").first
    await row.locator(".state-pending").wait_for()
    await ui.shot("action-pending")

    conn = await running.device(AGENT)  # the agent connects: the request is delivered
    delivered = await conn.next_request(10)
    assert (delivered.name, delivered.input) == ("fade", {"to": 30, "seconds": 2})
    await row.locator(".state-delivered").wait_for()
    await answer(conn, delivered, status="completed", output={"level": 30})
    await row.locator(".state-completed").wait_for()
    assert "level" in await row.inner_text()
    await ui.shot("action-completed")

    # a second one, cancelled while it waits
    await conn.close()
    await fade.locator('[data-field="to"] input').fill("10")
    await fade.locator("button[type=submit]").click()
    pending = ui.page.locator("#requests-body tr[data-state=pending]")
    await pending.wait_for()
    await pending.locator("button[data-cancel]").click()
    await ui.page.locator("#requests-body tr[data-state=cancelled]").wait_for()
    await ui.shot("action-cancelled")
    assert ui.errors == []


async def test_a_viewer_gets_no_forms_and_the_hub_refuses_anyway(running, open_dashboard):
    token = running.add_client("vera", "consumer", "viewer")
    await register(running, td=desk_lamp_td())
    ui = await open_dashboard(mobile=True)
    await ui.login("vera")
    await ui.page.goto(running.url + thing_hash())
    await ui.page.wait_for_selector("#thing-title:has-text('Desk lamp')")
    await ui.page.wait_for_selector("#actions-refused:has-text('viewer')")
    assert await ui.page.locator("form.invoke, form.write").count() == 0
    assert await ui.page.locator("[data-admin]:visible").count() == 0
    await ui.shot("viewer-thing-phone")

    await ui.page.goto(running.url + "/#/admin/clients")  # the page refuses
    await ui.page.wait_for_selector(".refused:has-text('Only administrators')")
    async with running.session(token) as http:  # and the hub refuses regardless
        path = "/things/" + quote(LAMP, safe="") + "/actions/fade"
        async with http.post(path, json={"to": 1}) as response:
            assert response.status == 403
        async with http.post("/things/urn:wothub:clients/actions/listClients") as response:
            assert response.status == 403
    assert ui.errors == []


async def test_an_admin_issues_generates_and_revokes_certificates(
    running, open_dashboard, tmp_path
):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    running.add_client("ada", "consumer", "admin")
    ui = await open_dashboard()
    await ui.login("ada")
    await ui.page.click("a[href='#/admin/clients']")
    add = ui.page.locator("#add-client")
    await add.wait_for()
    await add.locator('[data-field="clientID"] input').fill("sensor-7")
    await add.locator('[data-field="kind"] select').select_option(label="agent")
    await add.locator('[data-field="role"] select').select_option(label="agent")
    await add.locator('[data-field="password"] input').fill("short")
    await add.locator("button[type=submit]").click()
    await add.locator('[data-field="password"] .field-error:has-text("at least 8")').wait_for()
    await add.locator('[data-field="password"] input').fill("long enough secret")
    await add.locator("button[type=submit]").click()
    await ui.page.locator('tr[data-client="sensor-7"]').wait_for()
    await ui.shot("clients")

    await ui.page.click("a[href='#/admin/certificates']")
    # issue from an uploaded CSR
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor-7")]))
        .sign(key, hashes.SHA256())
    )
    csr_file = tmp_path / "sensor-7.csr"
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    issue = ui.page.locator("#issue-certificate")
    await issue.locator('[data-field="clientID"] input').fill("sensor-7")
    await issue.locator("#csr-file").set_input_files(str(csr_file))
    async with ui.page.expect_download() as issued:
        await issue.locator("button[type=submit]").click()
    certificate = x509.load_pem_x509_certificate((await (await issued.value).path()).read_bytes())
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()
    serial = format(certificate.serial_number, "x")
    row = ui.page.locator("#certificates-body tr[data-revoked=no]").first
    await row.wait_for()

    # generate a key and certificate: the key is downloaded once
    generate = ui.page.locator("#generate-certificate")
    await generate.locator('[data-field="clientID"] input').fill("sensor-7")
    await generate.locator("button[type=submit]").click()
    async with ui.page.expect_download() as key_download:
        await ui.page.click("#download-key")
    key_pem = (await (await key_download.value).path()).read_bytes()
    assert b"PRIVATE KEY" in key_pem
    assert await ui.page.locator("#download-key").is_disabled()
    await ui.page.locator("#certificates-body tr[data-serial]").nth(1).wait_for()
    await ui.shot("certificates")

    # revoke the issued one (two clicks: the first asks)
    issued_row = ui.page.locator("#certificates-body tr").filter(
        has=ui.page.locator("code", has_text=re.compile(f"^0*{serial}$", re.IGNORECASE))
    )
    await issued_row.locator("button:has-text('Revoke')").click()
    await issued_row.locator("button:has-text('Confirm')").click()
    await ui.page.locator("#certificates-message:has-text('revoked')").wait_for()
    await issued_row.locator(".revoked").wait_for()
    listed = running.hub.ca.list_issued("sensor-7")
    assert [c.revoked for c in listed if c.serial == certificate.serial_number] == [True]
    await ui.shot("certificate-revoked")
    assert ui.errors == []


async def test_search_by_text_and_jsonpath_and_paging(running, open_dashboard):
    running.add_client("vera", "consumer", "viewer")
    fleet = [
        desk_lamp_td(f"urn:dev:fleet:{i:03d}", title=f"Street light {i:03d}") for i in range(60)
    ]
    await register_all(running, "fleet", fleet)
    await register(running, td=desk_lamp_td(title="Desk lamp (Office)"))
    ui = await open_dashboard()
    await ui.login("vera")
    await ui.page.wait_for_selector(f"#page-range:has-text('1{DASH}50 of 61')")
    await ui.page.click("#page-next")
    await ui.page.wait_for_selector(f"#page-range:has-text('51{DASH}61 of 61')")
    assert await ui.page.locator("#things-body tr").count() == 11  # the hub's own Things are apart
    await ui.shot("page-2")

    await ui.page.fill("#search-text", "office)")  # any case; regexp characters are text
    await ui.page.click("#search-form button[type=submit]")
    await ui.page.wait_for_selector(f"#page-range:has-text('1{DASH}1 of 1')")
    assert await ui.page.locator(f'tr[data-id="{LAMP}"]').count() == 1

    await ui.page.fill("#search-text", "STREET LIGHT 05")
    await ui.page.click("#search-form button[type=submit]")
    await ui.page.wait_for_selector(f"#page-range:has-text('1{DASH}10 of 10')")
    await ui.shot("text-search")

    await ui.page.select_option("#search-mode", "jsonpath")
    await ui.page.fill("#search-text", "$[?@.title == 'Street light 007']")
    await ui.page.click("#search-form button[type=submit]")
    await ui.page.wait_for_selector(f"#page-range:has-text('1{DASH}1 of 1')")
    assert await ui.page.locator('tr[data-id="urn:dev:fleet:007"]').count() == 1
    await ui.page.fill("#search-text", "$..properties.temperature.unit")  # not TDs: raw JSON
    await ui.page.click("#search-form button[type=submit]")
    await ui.page.wait_for_selector("#search-raw:has-text('°C')")
    await ui.page.fill("#search-text", "$[?@.title ==")
    await ui.page.click("#search-form button[type=submit]")
    await ui.page.wait_for_selector("#directory-message:has-text('invalid JSONPath')")
    await ui.shot("jsonpath-error")
    await ui.page.click("#search-clear")
    await ui.page.wait_for_selector(f"#page-range:has-text('1{DASH}50 of 61')")
    assert ui.errors == []
