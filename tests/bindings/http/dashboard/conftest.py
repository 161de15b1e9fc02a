"""The dashboard in a real headless Chromium (Debian's ``chromium`` package, installed
by ``make test``), driven by Playwright's async API (its sync API cannot run inside the
pytest-asyncio loop). Browsers are never downloaded: Playwright is given the system
binary. Screenshots go to tests/output/screenshots/ (git-ignored) for a person to see.

Without chromium or Playwright the tests fail, saying what to install
(tests/requirements.py; WOTHUB_ALLOW_MISSING=1 skips them instead)."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.requirements import require_command, require_module
from tests.support.running import PASSWORD
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import lamp_td

SCREENSHOTS = Path(__file__).resolve().parents[3] / "output" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def desk_lamp_td(thing_id: str = LAMP, title: str = "Desk lamp") -> dict:
    """The shared lamp as the dashboard shows a real device: a type, a description, units,
    a read-only observed temperature and an asynchronous fade with two inputs."""
    href = "https://lamp.local"
    return lamp_td(
        thing_id,
        title,
        only=("on", "overheated"),
        properties={
            "temperature": {
                "type": "number",
                "unit": "°C",
                "readOnly": True,
                "observable": True,
                "forms": [{"href": f"{href}/t"}],
            },
            "brightness": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "unit": "%",
                "forms": [{"href": f"{href}/b"}],
            },
        },
        actions={
            "fade": {
                "title": "Fade",
                "input": {
                    "type": "object",
                    "properties": {
                        "to": {"type": "integer", "minimum": 0, "maximum": 100},
                        "seconds": {"type": "number", "minimum": 0},
                    },
                    "required": ["to"],
                },
                "synchronous": False,
                "forms": [{"href": f"{href}/fade"}],
            }
        },
        description="A lamp on the desk",
        **{"@type": "Light"},
    )


def thing_hash(thing_id: str = LAMP) -> str:
    """The dashboard's address of a Thing's page."""
    return "/#/thing/" + quote(thing_id, safe="")


def trusting(ca_cert_pem: bytes) -> str:
    """The Chromium flag that trusts certificates chained to this CA's key (and no
    other), instead of ignoring HTTPS errors: the SHA-256 of its SubjectPublicKeyInfo."""
    public_key = x509.load_pem_x509_certificate(ca_cert_pem).public_key()
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    digest = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return f"--ignore-certificate-errors-spki-list={digest}"


@pytest.fixture
async def launch():
    """``await launch(*args)``: a headless Chromium with CHROMIUM_ARGS and ``args``."""
    require_module("playwright")
    executable = require_command("chromium", "chromium-browser", package="chromium")
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=10_000)  # as the contexts' default timeout below
    browsers = []
    async with async_playwright() as playwright:

        async def start(*args: str):
            launched = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=[*CHROMIUM_ARGS, *args]
            )
            browsers.append(launched)
            return launched

        try:
            yield start
        finally:
            for launched in browsers:
                await launched.close()


@pytest.fixture
async def browser(launch, running):
    """Chromium trusting the running hub's CA."""
    return await launch(trusting(running.hub.ca.ca_cert_pem))


class Dashboard:
    """One browser context (its own memory, so its own login) on the hub's dashboard."""

    def __init__(self, page, url: str, name: str) -> None:
        self.page = page
        self.url = url
        self.name = name
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(msg.text)
                if msg.type == "error" and "status of 4" not in msg.text
                else None
            ),
        )

    async def open(self, path: str = "/") -> None:
        await self.page.goto(self.url + path)

    async def login(self, client_id: str, password: str = PASSWORD) -> None:
        await self.open()
        await self.page.fill("#login-id", client_id)
        await self.page.fill("#login-password", password)
        await self.page.click("#login-form button[type=submit]")
        await self.page.wait_for_selector("#who:has-text('" + client_id + "')")

    async def shot(self, label: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{re.sub(r'[^a-z0-9-]+', '-', label.lower())}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def open_dashboard(browser, running, request):
    """``await open_dashboard(label, mobile=False)``: a fresh browser context's page."""
    contexts = []

    async def make(label: str = "", *, mobile: bool = False) -> Dashboard:
        options = {"accept_downloads": True}
        if mobile:
            options.update(viewport={"width": 390, "height": 844}, is_mobile=True)
        else:
            options.update(viewport={"width": 1280, "height": 900})
        context = await browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        name = request.node.name.removeprefix("test_") + (f"-{label}" if label else "")
        return Dashboard(await context.new_page(), running.url, name)

    yield make
    for context in contexts:
        await context.close()
