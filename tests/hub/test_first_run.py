"""What the first ``wothub serve`` on an empty home creates, what later starts keep, and
what survives a restart of the store (sessions, clients, certificate revocations)."""

import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auth.errors import AuthenticationFailed
from auth.passwords import HashCost
from auth.service import AuthConfig, AuthService
from bucketstore import open_store
from certs import CertificateAuthority, CertificateError
from tests.support.served import serve_env

# Only for the decoy and new hashes made in these tests: a hash written by the hub carries
# its own (default) cost, which is what verifying it uses.
CHEAP = AuthConfig(hash_cost=HashCost(time_cost=1, memory_kib=1024, parallelism=1))
PRIVATE_FILES = ("certs/ca.key", "certs/server.key", "keys/token-signing.key", "admin.password")


class Served:
    """``wothub serve --home <home>`` in a subprocess, its log read by a thread so that
    every wait is bounded."""

    def __init__(self, home):
        self.home = home
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        env = serve_env()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--home", str(home), "--log-level", "INFO"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            umask=0,  # the hub's private files must be private whatever the umask
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, needle, timeout=30.0):
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if needle in line:
                return line
        pytest.fail(f"{needle!r} not logged within {timeout}s; got {self.lines}")

    def stop(self, timeout=15.0):
        """SIGTERM, then wait for a clean exit (killed if it does not come)."""
        try:
            self.process.send_signal(signal.SIGTERM)
            self.wait_for("wothub stopped", timeout)
            assert self.process.wait(timeout=timeout) == 0
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=5)

    @property
    def log(self):
        return "".join(self.lines)


def serve_once(home):
    """Start the hub, wait until it is up, stop it; returns everything it logged."""
    hub = Served(home)
    try:
        hub.wait_for("wothub started")
        hub.stop()
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait(timeout=5)
    return hub.log


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


async def test_first_run_creates_ca_keys_and_admin_password(tmp_path):
    home = tmp_path / "home"
    log = serve_once(home)

    # The CA, the server certificate, the token signing key, the admin password.
    for name in ("certs/ca.pem", "certs/server.pem", *PRIVATE_FILES):
        assert (home / name).is_file(), name
    for name in PRIVATE_FILES:
        assert mode(home / name) == 0o600, name
    for directory in ("certs", "keys"):
        assert mode(home / directory) == 0o700, directory
    for name in ("certs/ca.pem", "certs/server.pem"):
        assert mode(home / name) & 0o022 == 0  # public, but nobody else may change it

    # The server certificate is the CA's and covers localhost.
    ca_cert = x509.load_pem_x509_certificate((home / "certs/ca.pem").read_bytes())
    server_cert = x509.load_pem_x509_certificate((home / "certs/server.pem").read_bytes())
    server_cert.verify_directly_issued_by(ca_cert)
    names = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    server_key = serialization.load_pem_private_key(
        (home / "certs/server.key").read_bytes(), password=None
    )
    assert server_key.public_key() == server_cert.public_key()

    # The log says where the password is (and not the password itself).
    password = (home / "admin.password").read_text()
    assert password.endswith("\n") and len(password.strip()) >= 20
    first_run = [line for line in log.splitlines() if "first run" in line]
    assert len(first_run) == 1, log
    assert str(home / "admin.password") in first_run[0]
    assert password.strip() not in log

    # That password logs in as the administrator.
    with open_store(home / "store") as store:
        auth = AuthService(store, home, CHEAP)
        login = await auth.login("admin", password.strip())
        assert (login["clientID"], login["role"]) == ("admin", "admin")
        assert auth.authenticate_token(login["token"]).role == "admin"
        with pytest.raises(AuthenticationFailed):
            (await auth.login("admin", password.strip() + "x"))


def test_the_home_directory_is_private_whatever_the_umask(tmp_path):
    home = tmp_path / "home"
    serve_once(home)
    assert mode(home) & 0o077 == 0, oct(mode(home))


async def test_later_starts_keep_the_ca_keys_and_do_not_rewrite_the_password(tmp_path):
    home = tmp_path / "home"
    serve_once(home)
    kept = ("certs/ca.pem", "certs/ca.key", "keys/token-signing.key", "certs/server.pem")
    before = {name: (home / name).read_bytes() for name in kept}
    password_file = home / "admin.password"
    password = password_file.read_text()
    stat_before = password_file.stat()

    log = serve_once(home)
    assert "first run" not in log
    assert password_file.read_text() == password
    stat_after = password_file.stat()
    assert (stat_after.st_ino, stat_after.st_mtime_ns, stat_after.st_ctime_ns) == (
        stat_before.st_ino,
        stat_before.st_mtime_ns,
        stat_before.st_ctime_ns,
    )
    for name in kept:
        assert (home / name).read_bytes() == before[name], name

    # Deleting the file (as the log asks) does not bring it back, nor a new admin.
    password_file.unlink()
    log = serve_once(home)
    assert "first run" not in log
    assert not password_file.exists()
    assert (home / "certs/ca.pem").read_bytes() == before["certs/ca.pem"]
    with open_store(home / "store") as store:
        auth = AuthService(store, home, CHEAP)
        admins = [a.client_id for a in auth.accounts.list() if a.role == "admin"]
        assert admins == ["admin"]
        assert (await auth.login("admin", password.strip()))["role"] == "admin"


def make_csr_pem(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


async def test_sessions_clients_and_revocations_survive_a_restart(tmp_path):
    home, path = tmp_path / "home", tmp_path / "store"
    with open_store(path) as store:
        auth = AuthService(store, home, CHEAP)
        ca = CertificateAuthority.load_or_create(home, store.bucket("certs"))
        auth.add_client("vera", "consumer", "viewer", password="vera-password")
        auth.add_client("lamp-agent", "agent", "agent")
        auth.add_client("gone", "consumer", "operator")
        auth.add_client("off", "consumer", "operator")
        kept_token = (await auth.login("vera", "vera-password"))["token"]
        ended_token = (await auth.login("vera", "vera-password"))["token"]
        auth.logout(ended_token)
        agent_token = auth.new_token("lamp-agent")["token"]
        off_token = auth.new_token("off")["token"]
        auth.update_client("off", enabled=False)
        auth.update_client("lamp-agent", display_name="Lamp")

        kept_cert = ca.issue_from_csr(make_csr_pem("vera"), "vera")
        revoked_cert, _ = ca.generate_for("vera")
        ca.revoke(revoked_cert.serial)
        gone_cert, _ = ca.generate_for("gone")
        gone_token = auth.new_token("gone")["token"]
        auth.remove_client("gone")
        ca.revoke_client("gone")
        accounts_before = sorted((a.client_id, a.role, a.enabled) for a in auth.accounts.list())

    with open_store(path) as store:
        auth = AuthService(store, home, CHEAP)
        ca = CertificateAuthority.load_or_create(home, store.bucket("certs"))
        verify = ca.verify_client_certificate

        assert sorted((a.client_id, a.role, a.enabled) for a in auth.accounts.list()) == (
            accounts_before
        )
        assert auth.accounts.get("lamp-agent").display_name == "Lamp"
        # Tokens from before the restart: the live ones still work (same signing key,
        # sessions kept), the ended ones stay ended.
        vera = auth.authenticate_token(kept_token)
        assert (vera.id, vera.role) == ("vera", "viewer")
        assert auth.authenticate_token(agent_token).id == "lamp-agent"
        assert auth.refresh(kept_token)["clientID"] == "vera"
        for token in (ended_token, gone_token, off_token):
            with pytest.raises(AuthenticationFailed):
                auth.authenticate_token(token)
        with pytest.raises(AuthenticationFailed):
            auth.refresh(ended_token)
        # The password still works; the disabled client stays disabled.
        assert (await auth.login("vera", "vera-password"))["clientID"] == "vera"
        auth.update_client("off", enabled=True)
        with pytest.raises(AuthenticationFailed):  # disabling ended its session for good
            auth.authenticate_token(off_token)

        # Certificates: the kept one logs in, the revoked ones stay refused.
        assert auth.authenticate_certificate(kept_cert.cert_pem, verify).id == "vera"
        with pytest.raises(CertificateError, match=r"^revoked"):
            verify(revoked_cert.cert_pem)
        with pytest.raises(AuthenticationFailed):
            auth.authenticate_certificate(revoked_cert.cert_pem, verify)
        # A new client named like the removed one does not inherit its certificate.
        auth.add_client("gone", "consumer", "admin")
        with pytest.raises(CertificateError, match=r"^revoked"):
            verify(gone_cert.cert_pem)
        with pytest.raises(AuthenticationFailed):
            auth.authenticate_certificate(gone_cert.cert_pem, verify)
        assert {i.serial: i.revoked for i in ca.list_issued()} == {
            kept_cert.serial: False,
            revoked_cert.serial: True,
            gone_cert.serial: True,
        }


@pytest.mark.parametrize(
    ("listener", "variable"),
    [("HTTPS", "WOTHUB_HTTP_PORT"), ("MQTT", "WOTHUB_MQTT_PORT"), ("NATS", "WOTHUB_NATS_PORT")],
)
def test_a_taken_port_names_the_listener_and_its_address(tmp_path, listener, variable):
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", "serve", "--home", str(home)],
            env=serve_env(**{variable: str(port)}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR wothub:" in line]
    assert len(errors) == 1, done.stderr
    assert f"the {listener} listener cannot listen on 127.0.0.1:{port}" in errors[0]
    assert "Address already in use" in errors[0]
    # What the first start made is there, said to be kept, and the next start uses it.
    assert f"{home} (CA, keys, admin password) is kept" in errors[0]
    assert (home / "certs" / "ca.key").exists() and (home / "admin.password").exists()
    assert "Traceback" not in done.stderr.split("ERROR wothub:")[-1]
