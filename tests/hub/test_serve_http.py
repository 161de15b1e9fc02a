"""`wothub serve` end to end over HTTPS with curl: listeners.json says where it listens,
the first-run admin password logs in, a registered TD survives a restart, SIGTERM stops
it cleanly and removes listeners.json."""

import json
import subprocess
from urllib.parse import quote

import pytest

from tests.requirements import require_command
from tests.support.served import Served
from tests.support.tds import lamp_td

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _needs_curl():
    require_command("curl", package="curl")


THING = "urn:dev:ops:serve-test/1"
TD = lamp_td(THING, "Served lamp", only=("on",))


class Curl:
    """curl against the hub, trusting only its CA."""

    def __init__(self, base_url, ca_file):
        self.base_url = base_url
        self.ca_file = ca_file

    def __call__(self, method, path, body=None, token=None):
        """(status, body as JSON or None)."""
        command = ["curl", "--silent", "--show-error", "--max-time", "10"]
        command += ["--cacert", str(self.ca_file), "-X", method]
        command += ["--write-out", "\n%{http_code}"]
        if token:
            command += ["-H", f"Authorization: Bearer {token}"]
        if body is not None:
            command += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        result = subprocess.run(
            [*command, self.base_url + path],
            input=json.dumps(body) if body is not None else "",
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert result.returncode == 0, result.stderr
        text, _, code = result.stdout.rpartition("\n")
        return int(code), json.loads(text) if text.strip() else None

    def login(self, password):
        status, body = self("POST", "/authn/login", {"clientID": "admin", "password": password})
        assert status == 200, body
        assert body["clientID"] == "admin" and body["role"] == "admin"
        return body["token"]


def thing_path():
    return "/things/" + quote(THING, safe="")


def test_serve_over_https_keeps_tds_and_the_admin_password(tmp_path):
    home = tmp_path / "home"
    hub = Served(home, tmp_path / "first.log")
    try:
        https = hub.wait_for_listeners()
        assert https["url"].startswith("https://127.0.0.1:")
        assert https["port"] not in (0, 8444)
        ca_file = home / "certs" / "ca.pem"
        assert ca_file.is_file()
        curl = Curl(https["url"], ca_file)

        password = (home / "admin.password").read_text().strip()
        token = curl.login(password)
        status, problem = curl("POST", "/authn/login", {"clientID": "admin", "password": "x" * 9})
        assert status == 401 and problem["status"] == 401

        assert curl("GET", thing_path(), token=token)[0] == 404
        assert curl("PUT", thing_path(), TD, token=token)[0] == 201
        status, td = curl("GET", thing_path(), token=token)
        assert status == 200 and td["title"] == "Served lamp"
        # The forms point at the URL listeners.json gives.
        hrefs = [f["href"] for f in td["properties"]["on"]["forms"]]
        assert any(h.startswith(https["url"] + "/things/") for h in hrefs), hrefs
        assert curl("GET", thing_path())[0] == 401  # no credentials

        assert hub.stop() == 0, hub.log
    finally:
        hub.kill()
    assert not (home / "listeners.json").exists()
    assert "wothub stopped" in hub.log

    # Again on the same home: the same password, the TD still there.
    again = Served(home, tmp_path / "second.log")
    try:
        https = again.wait_for_listeners()
        curl = Curl(https["url"], home / "certs" / "ca.pem")
        token = curl.login(password)
        status, td = curl("GET", thing_path(), token=token)
        assert status == 200, td
        assert td["id"] == THING and td["title"] == "Served lamp"
        status, things = curl("GET", "/things", token=token)
        assert status == 200 and THING in [t["id"] for t in things]
        assert again.stop() == 0, again.log
    finally:
        again.kill()
    assert not (home / "listeners.json").exists()
    assert "first run" not in again.log
