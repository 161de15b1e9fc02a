"""``wothub clients | certs | things`` against a real hub over HTTPS: in-process through
``hub.cli.main`` (in a thread, since main runs its own event loop), and once as the
installed ``wothub`` script."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import stat
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bucketstore import StoreUnavailableError, open_store
from hub.cli import main
from tests.support.running import PASSWORD, RunningHub
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import lamp_td

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("clean_environment")]


class CliHub:
    """The hub of ``running`` as the admin commands find it: its home, its CA file, and
    the flags that point a command at it."""

    def __init__(self, running: RunningHub, tmp_path: Path) -> None:
        self.running = running
        self.hub = running.hub
        self.home = running.hub.config.home
        self.url = running.url
        self.ca_file = self.home / "certs" / "ca.pem"
        self.tmp_path = tmp_path

    def token(self, client_id: str, role: str = "admin") -> str:
        return self.running.add_client(client_id, "consumer", role)

    def password_file(self, password: str = PASSWORD, name: str = "password") -> str:
        path = self.tmp_path / name
        path.write_text(password + "\n")
        return str(path)

    def flags(self, token: str) -> list[str]:
        return ["--url", self.url, "--ca", str(self.ca_file), "--token", token]


@pytest.fixture
def cli_hub(running, tmp_path) -> CliHub:
    running.hub.first_run()  # the admin client, its password in <home>/admin.password
    return CliHub(running, tmp_path)


async def wothub(capsys, *argv) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- finding the hub and logging in ------------------------------------------------------


async def test_defaults_from_the_home_of_a_running_hub(cli_hub, capsys):
    # listeners.json gives the URL, certs/ca.pem the CA, admin.password the login.
    code, out, err = await wothub(capsys, "clients", "list", "--home", cli_hub.home)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "KIND", "ROLE", "ENABLED", "PASSWORD", "NAME"]
    assert lines[1].split()[:4] == ["admin", "consumer", "admin", "yes"]


async def test_environment_variables(cli_hub, capsys, monkeypatch):
    monkeypatch.setenv("WOTHUB_HOME", str(cli_hub.home))
    code, out, err = await wothub(capsys, "clients", "list", "--json")
    assert code == 0, err
    assert [a["clientID"] for a in json.loads(out)] == ["admin"]

    monkeypatch.delenv("WOTHUB_HOME")
    monkeypatch.setenv("WOTHUB_URL", cli_hub.url)
    monkeypatch.setenv("WOTHUB_CA", str(cli_hub.ca_file))
    cli_hub.token("ops")
    monkeypatch.setenv("WOTHUB_CLIENT_ID", "ops")
    monkeypatch.setenv("WOTHUB_PASSWORD", PASSWORD)
    code, out, err = await wothub(capsys, "clients", "list", "--json")
    assert code == 0, err
    monkeypatch.delenv("WOTHUB_PASSWORD")
    monkeypatch.setenv("WOTHUB_PASSWORD_FILE", cli_hub.password_file())
    code, out, err = await wothub(capsys, "things", "list")
    assert code == 0, err
    monkeypatch.setenv("WOTHUB_TOKEN", cli_hub.token("tess"))
    monkeypatch.setenv("WOTHUB_PASSWORD_FILE", cli_hub.password_file("wrong", "wrong"))
    code, out, err = await wothub(capsys, "things", "list")  # the token wins
    assert code == 0, err


async def test_a_client_id_and_a_password_file(cli_hub, capsys):
    cli_hub.token("ops")
    flags = ["--url", cli_hub.url, "--ca", cli_hub.ca_file, "--client-id", "ops"]
    code, out, err = await wothub(
        capsys, "clients", "list", *flags, "--password-file", cli_hub.password_file()
    )
    assert code == 0, err
    assert "ops" in out
    # --password-file is the login's in clients add too; the new client's is
    # --new-password-file.
    code, out, err = await wothub(
        capsys,
        "clients", "add", "bob", "--kind", "consumer", "--role", "viewer",
        "--new-password-file", cli_hub.password_file("bob's password", "bob"),
        *flags, "--password-file", cli_hub.password_file(),
    )  # fmt: skip
    assert code == 0, err
    assert (await cli_hub.hub.auth.login("bob", "bob's password"))["clientID"] == "bob"


async def test_hub_not_running(cli_hub, capsys, tmp_path, unused_tcp_port):
    url = f"https://127.0.0.1:{unused_tcp_port}"
    code, out, err = await wothub(
        capsys, "clients", "list", "--url", url, "--ca", cli_hub.ca_file, "--token", "x"
    )
    assert code == 3 and out == ""
    assert err == (
        f"wothub: cannot reach the hub at {url}: Connection refused; check the URL, and that "
        f"`wothub serve` is running there\n"
    )
    elsewhere = tmp_path / "elsewhere"
    code, out, err = await wothub(capsys, "things", "list", "--home", elsewhere)
    assert code == 3
    assert err == (
        f"wothub: cannot find the hub: no --url, no WOTHUB_URL and no "
        f"{elsewhere / 'listeners.json'} of a running hub; start it with `wothub serve`, or "
        f"give its home with --home DIR (or WOTHUB_HOME), or its address with --url URL\n"
    )


async def test_a_url_that_is_not_a_hubs(capsys):
    for url in ("localhost:8444", "http://127.0.0.1:8444", "https://[::1", "https://h:port"):
        code, out, err = await wothub(capsys, "things", "list", "--url", url, "--token", "x")
        assert (code, out) == (2, "")
        assert err == (
            f"wothub: --url {url} is not the address of a hub; give https://HOST:PORT (the "
            f"URL `wothub serve` logs at its start)\n"
        )


async def test_a_listeners_file_left_by_a_crashed_hub(cli_hub, capsys, tmp_path):
    from hub.listeners import write_listeners

    home = tmp_path / "crashed"
    dead = 2**22 + 12345  # above any default pid_max: no such process
    write_listeners(home, {"https": {"url": cli_hub.url, "local_url": cli_hub.url}}, pid=dead)
    code, _, err = await wothub(capsys, "things", "list", "--home", home)
    assert code == 3
    assert err == (
        f"wothub: cannot reach the hub at {cli_hub.url}: the hub that wrote "
        f"{home / 'listeners.json'} (pid {dead}) is no longer running; start it with "
        f"`wothub serve`\n"
    )


async def test_the_wrong_ca(cli_hub, capsys, tmp_path):
    from certs import CertificateAuthority

    with open_store(tmp_path / "other-store", "memory") as store:
        other = CertificateAuthority.load_or_create(tmp_path / "other", store.bucket("certs"))
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(other.ca_cert_pem)
    token = cli_hub.token("ops")
    code, _, err = await wothub(
        capsys, "things", "list", "--url", cli_hub.url, "--ca", other_ca, "--token", token
    )
    assert code == 3
    assert err.startswith(
        f"wothub: cannot verify the hub's certificate at {cli_hub.url} with --ca {other_ca}: "
    )
    assert err.endswith(
        "; give the hub's CA certificate (the file certs/ca.pem in its home) with --ca FILE\n"
    )
    missing = tmp_path / "missing.pem"
    code, _, err = await wothub(capsys, "things", "list", "--url", cli_hub.url, "--ca", missing)
    assert code == 2
    assert err == (
        f"wothub: cannot read --ca {missing}: No such file or directory; give the hub's CA "
        f"certificate, the file certs/ca.pem in its home\n"
    )


async def test_bad_credentials(cli_hub, capsys):
    cli_hub.token("ops")
    flags = ["--url", cli_hub.url, "--ca", cli_hub.ca_file, "--client-id", "ops"]
    wrong = cli_hub.password_file("not the password", "wrong")
    code, out, err = await wothub(capsys, "clients", "list", *flags, "--password-file", wrong)
    assert code == 4 and out == ""
    assert err.startswith(
        f"wothub: not logged in: the hub refused 'ops' with the password from {wrong} ("
    )
    assert err.endswith("); check --client-id and the password\n")
    code, _, err = await wothub(
        capsys, "clients", "list", "--url", cli_hub.url, "--ca", cli_hub.ca_file, "--token", "x"
    )
    assert code == 4 and err.startswith("wothub: not logged in: the hub refused the token (")
    # No credentials at all (no admin.password readable): a hint what to give.
    (cli_hub.home / "admin.password").unlink()
    code, _, err = await wothub(capsys, "clients", "list", "--home", cli_hub.home)
    assert code == 4
    assert err == (
        f"wothub: not logged in: no credentials were given and "
        f"{cli_hub.home / 'admin.password'} cannot be read; give --token TOKEN, or "
        f"--password-file FILE (the admin's, or with --client-id ID another client's), or "
        f"set WOTHUB_TOKEN or WOTHUB_PASSWORD_FILE\n"
    )
    code, _, err = await wothub(capsys, "clients", "list", *flags)
    assert code == 4
    assert err == (
        "wothub: no password for 'ops': give --password-file FILE, or set "
        "WOTHUB_PASSWORD_FILE or WOTHUB_PASSWORD, or run the command at a terminal to type it\n"
    )
    missing = cli_hub.tmp_path / "missing"
    code, _, err = await wothub(capsys, "clients", "list", *flags, "--password-file", missing)
    assert code == 2
    assert err == (
        f"wothub: cannot read --password-file {missing}: No such file or directory; give a "
        f"readable file whose first line is the password\n"
    )


async def test_refused(cli_hub, capsys):
    viewer = cli_hub.token("vera", "viewer")
    code, out, err = await wothub(capsys, "clients", "list", *cli_hub.flags(viewer))
    assert code == 4 and out == ""
    assert err.startswith("wothub: not allowed: ")
    assert err.endswith("; log in as a client whose role allows it\n") and err.count("\n") == 1


async def test_a_503_with_retry_after_is_asked_again(cli_hub, capsys, monkeypatch):
    """A cluster node whose store waits for a stream's new leader answers 503 with
    Retry-After: the command waits that long and asks again (at most 3 times)."""
    flags = cli_hub.flags(cli_hub.token("ops"))
    accounts = cli_hub.hub.auth.accounts
    add, refused = accounts.add, []

    def unavailable_once(*args, **kwargs):
        if not refused:
            refused.append(args[0])
            raise StoreUnavailableError("bucket 'clients': no answer within 5.0 s (a test's)")
        return add(*args, **kwargs)

    monkeypatch.setattr(accounts, "add", unavailable_once)
    code, out, err = await wothub(
        capsys, "clients", "add", "dora", "--kind", "consumer", "--role", "viewer", "--json",
        *flags,
    )  # fmt: skip
    assert code == 0, err
    assert refused == ["dora"]
    assert json.loads(out)["clientID"] == "dora"
    assert "503" in err and "asking again in" in err


# -- wothub clients ----------------------------------------------------------------------


async def test_clients(cli_hub, capsys):
    flags = cli_hub.flags(cli_hub.token("ops"))
    code, out, err = await wothub(
        capsys, "clients", "add", "bob", "--kind", "consumer", "--role", "viewer",
        "--display-name", "Bob", "--new-password", "bob's password", "--json", *flags,
    )  # fmt: skip
    assert code == 0, err
    added = json.loads(out)
    assert (added["clientID"], added["role"], added["hasPassword"]) == ("bob", "viewer", True)

    code, out, _ = await wothub(capsys, "clients", "list", *flags)
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["admin", "bob", "ops"]
    assert "Bob" in out

    code, out, _ = await wothub(capsys, "clients", "set-role", "bob", "manager", *flags)
    header, row = out.splitlines()  # a human table unless --json
    assert header.split()[:3] == ["ID", "KIND", "ROLE"] and row.split()[:3] == [
        "bob",
        "consumer",
        "manager",
    ]

    new = cli_hub.password_file("a new password", "new")
    code, out, err = await wothub(
        capsys, "clients", "set-password", "bob", "--new-password-file", new, *flags
    )
    assert code == 0, err
    assert (await cli_hub.hub.auth.login("bob", "a new password"))["role"] == "manager"

    code, out, _ = await wothub(capsys, "clients", "new-token", "bob", "--json", *flags)
    token = json.loads(out)["token"]
    assert cli_hub.hub.auth.authenticate_token(token).id == "bob"

    code, out, err = await wothub(capsys, "clients", "remove", "bob", "--json", *flags)
    assert code == 0 and json.loads(out)["clientID"] == "bob"
    code, out, err = await wothub(capsys, "clients", "remove", "bob", *flags)
    assert code == 1 and out == "" and err.startswith("wothub: the hub answered 404 Not Found: ")


async def test_set_password_from_standard_input(cli_hub, capsys, monkeypatch):
    import io

    cli_hub.hub.auth.add_client("bob", "consumer", "viewer")
    monkeypatch.setattr(sys, "stdin", io.StringIO("typed in\n"))
    flags = cli_hub.flags(cli_hub.token("ops"))
    code, _, err = await wothub(capsys, "clients", "set-password", "bob", *flags)
    assert code == 0, err
    assert (await cli_hub.hub.auth.login("bob", "typed in"))["clientID"] == "bob"


async def test_password_file_is_the_login_password_in_every_command(cli_hub, capsys, monkeypatch):
    import io

    cli_hub.hub.auth.add_client("bob", "consumer", "viewer", password="bob's old password")
    old = cli_hub.password_file("bob's old password", "old")
    new = cli_hub.password_file("bob's new password", "new")
    hub = ["--url", cli_hub.url, "--ca", cli_hub.ca_file]
    as_admin = [*hub, "--password-file", cli_hub.home / "admin.password"]

    async def bob_logs_in_with(password_file) -> int:
        flags = [*hub, "--client-id", "bob", "--password-file", password_file]
        code, _, _ = await wothub(capsys, "things", "list", *flags)
        return code

    # Once the new client password, --password-file is now the admin's login here: with
    # no new password anywhere (stdin is empty) the command says so and changes nothing.
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = await wothub(capsys, "clients", "set-password", "bob", *as_admin)
    assert (code, out) == (2, "")
    assert err == (
        "wothub: no new password for 'bob': give --new-password-file FILE (--password-file "
        "is the password to log in with), or type it at a terminal, or send it on standard "
        "input\n"
    )
    assert await bob_logs_in_with(old) == 0

    code, _, err = await wothub(
        capsys, "clients", "set-password", "bob", "--new-password-file", new, *as_admin
    )
    assert code == 0, err
    assert await bob_logs_in_with(new) == 0
    assert await bob_logs_in_with(old) == 4

    # --login-password-file is the same flag; --new-password gives the password itself.
    admin_file = cli_hub.home / "admin.password"
    code, _, err = await wothub(
        capsys, "clients", "set-password", "bob", "--new-password", "bob's old password",
        *hub, "--login-password-file", admin_file,
    )  # fmt: skip
    assert code == 0, err
    assert await bob_logs_in_with(old) == 0

    # The new client password is never taken from a flag it used to be (no abbreviations).
    code, _, err = await wothub(
        capsys, "clients", "add", "carol", "--kind", "consumer", "--role", "viewer",
        "--password", "carol's password", *as_admin,
    )  # fmt: skip
    assert code == 2 and "unrecognized arguments: --password carol's password" in err
    empty = cli_hub.password_file("", "empty")
    code, _, err = await wothub(
        capsys, "clients", "add", "carol", "--kind", "consumer", "--role", "viewer",
        "--new-password-file", empty, *as_admin,
    )  # fmt: skip
    assert code == 2
    assert err == (
        f"wothub: the first line of --new-password-file {empty} is empty; put the password on it\n"
    )
    assert cli_hub.hub.auth.accounts.get("carol") is None


async def test_invalid_input_is_the_hubs_problem(cli_hub, capsys):
    flags = cli_hub.flags(cli_hub.token("ops"))
    code, out, err = await wothub(
        capsys, "clients", "add", "bob", "--kind", "agent", "--role", "viewer", *flags
    )
    assert code == 1 and out == ""
    assert err.startswith("wothub: ") and err.count("\n") == 1
    code, _, err = await wothub(capsys, "clients", "add", "bob", "--kind", "x", "--role", "y")
    assert code == 2 and "invalid choice" in err  # argparse's


async def test_the_role_follows_from_the_kind_where_only_one_fits(cli_hub, capsys):
    flags = cli_hub.flags(cli_hub.token("ops"))
    code, _, err = await wothub(capsys, "clients", "add", "sensor-9", "--kind", "agent", *flags)
    assert code == 0, err
    assert cli_hub.hub.auth.accounts.get("sensor-9").role == "agent"
    code, out, err = await wothub(capsys, "clients", "add", "bob", "--kind", "consumer", *flags)
    assert (code, out) == (2, "")
    assert err == (
        "wothub: a consumer needs a role; give --role, one of viewer, operator, manager, admin\n"
    )
    assert cli_hub.hub.auth.accounts.get("bob") is None


# -- wothub certs ------------------------------------------------------------------------


async def test_certs_generate_list_revoke(cli_hub, capsys, tmp_path):
    cli_hub.hub.auth.add_client("sensor-1", "agent", "agent")
    flags = cli_hub.flags(cli_hub.token("ops"))
    out_dir = tmp_path / "out"
    code, out, err = await wothub(
        capsys, "certs", "generate", "sensor-1", "--days", "30", "--out-dir", out_dir, "--json",
        *flags,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    key, cert = Path(summary["privateKey"]), Path(summary["certificate"])
    assert key == out_dir / "sensor-1.key" and cert == out_dir / "sensor-1.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (out_dir / "ca.pem").read_bytes() == cli_hub.hub.ca.ca_cert_pem
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    assert loaded.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sensor-1"
    assert serialization.load_pem_private_key(key.read_bytes(), None)

    # The key is never overwritten.
    code, _, err = await wothub(
        capsys, "certs", "generate", "sensor-1", "--out-dir", out_dir, *flags
    )
    assert code == 2
    assert err == (
        f"wothub: {out_dir / 'sensor-1.key'} already exists and a key is never overwritten; "
        f"remove it, or give another --out-dir DIR\n"
    )

    code, out, _ = await wothub(capsys, "certs", "list", "sensor-1", *flags)
    rows = out.splitlines()
    assert rows[0].split() == ["SERIAL", "CLIENT", "NOT", "AFTER", "REVOKED"]
    assert rows[1].split()[0] == summary["serial"] and rows[1].split()[-1] == "no"

    code, out, err = await wothub(capsys, "certs", "revoke", summary["serial"], *flags)
    assert code == 0, err
    row = out.splitlines()[1].split()  # SERIAL CLIENT NOT AFTER REVOKED
    assert (row[0], row[1], row[-1]) == (summary["serial"], "sensor-1", "yes")
    code, out, _ = await wothub(capsys, "certs", "list", "--json", *flags)
    assert [c["revoked"] for c in json.loads(out)] == [True]


async def test_certs_issue_from_a_csr(cli_hub, capsys, tmp_path):
    cli_hub.hub.auth.add_client("bob", "consumer", "viewer")
    flags = cli_hub.flags(cli_hub.token("ops"))
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bob")]))
        .sign(key, hashes.SHA256())
    )
    csr_file = tmp_path / "bob.csr"
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))

    code, out, err = await wothub(capsys, "certs", "issue", "bob", "--csr", csr_file, *flags)
    assert code == 0, err
    assert "BEGIN CERTIFICATE" in json.loads(out)["certificate"]

    out_file = tmp_path / "bob.pem"
    code, out, err = await wothub(
        capsys, "certs", "issue", "bob", "--csr", csr_file, "--out", out_file, "--json", *flags
    )
    assert code == 0, err
    assert json.loads(out)["certificate"] == str(out_file)
    issued = x509.load_pem_x509_certificate(out_file.read_bytes())
    assert issued.public_key() == key.public_key()

    code, _, err = await wothub(capsys, "certs", "issue", "bob", "--csr", tmp_path / "no", *flags)
    assert code == 2
    assert err == (
        f"wothub: cannot read --csr {tmp_path / 'no'}: No such file or directory; give the "
        f"file with the client's certificate signing request (PEM)\n"
    )
    csr_file.write_text("not a CSR")
    code, _, err = await wothub(capsys, "certs", "issue", "bob", "--csr", csr_file, *flags)
    assert code == 1 and "certificate signing request" in err


# -- wothub things -----------------------------------------------------------------------


async def test_things(cli_hub, capsys):
    cli_hub.running.add_thing("lamp-agent", lamp_td(LAMP, only=("on",)))
    flags = cli_hub.flags(cli_hub.token("ops"))
    code, out, err = await wothub(capsys, "things", "list", *flags)
    assert code == 0, err
    assert any(line.split() == [LAMP, "Lamp"] for line in out.splitlines())
    code, out, _ = await wothub(capsys, "things", "get", LAMP, *flags)
    assert json.loads(out)["id"] == LAMP
    code, out, err = await wothub(capsys, "things", "delete", LAMP, *flags)
    assert code == 0, err
    assert [line.split() for line in out.splitlines()] == [["ID", "DELETED"], [LAMP, "yes"]]
    code, out, err = await wothub(capsys, "things", "get", LAMP, *flags)
    assert code == 1 and err.startswith("wothub: the hub answered 404 Not Found: ")


# -- the installed script ----------------------------------------------------------------


async def test_the_wothub_script(cli_hub):
    script = Path(sys.executable).parent / "wothub"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOTHUB_")}
    env["WOTHUB_HOME"] = str(cli_hub.home)
    process = await asyncio.create_subprocess_exec(
        script,
        "clients",
        "list",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert [a["clientID"] for a in json.loads(out)] == ["admin"]

    process = await asyncio.create_subprocess_exec(
        script,
        "things",
        "get",
        "urn:nope",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1 and out == b""
    assert err.decode().startswith("wothub: the hub answered 404 Not Found: ")
    assert b"Traceback" not in err


def _at_a_terminal(argv: list[str], env: dict[str, str], answer: str) -> tuple[str, int]:
    """Run ``wothub argv`` on a pseudo-terminal; type ``answer`` at the first ``:`` prompt.
    Everything the terminal showed, and the exit code."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty, as in a shell
        os.execve(sys.executable, [sys.executable, "-m", "hub.cli", *argv], env)
    shown, answered = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        if not answered and b": " in shown:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return shown.decode(errors="replace"), os.waitstatus_to_exitcode(status)


async def test_at_a_terminal_the_login_password_is_asked_without_echo(cli_hub):
    cli_hub.hub.auth.add_client("bob", "consumer", "admin", password="bob's password")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOTHUB_")}
    argv = ["clients", "list", "--url", cli_hub.url, "--ca", str(cli_hub.ca_file)]
    shown, code = await asyncio.to_thread(
        _at_a_terminal, [*argv, "--client-id", "bob"], env, "bob's password"
    )
    assert code == 0, shown
    assert "password for bob: " in shown
    assert "bob's password" not in shown  # not echoed
    assert any(line.split()[:1] == ["bob"] for line in shown.splitlines()), shown
