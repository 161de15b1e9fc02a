import pytest

from auth.passwords import HashCost
from auth.service import AuthConfig, AuthService
from auth.throttle import ThrottleConfig
from bucketstore import open_store
from certs import CertificateAuthority

# Tests hash with a cheap argon2id cost; the algorithm and code path are the real ones.
CHEAP = HashCost(time_cost=1, memory_kib=1024, parallelism=1)


# Addresses wait long (a test sees the refusal), client ids are slowed briefly.
TEST_THROTTLE = ThrottleConfig(
    source_free=6, source_base_delay=30, account_base_delay=0.01, account_max_delay=0.05
)


def make_auth(home, store, **config):
    config.setdefault("hash_cost", CHEAP)
    config.setdefault("throttle", TEST_THROTTLE)
    return AuthService(store, home, AuthConfig(**config))


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "store") as store:
        yield store


@pytest.fixture
def auth(tmp_path, store):
    auth = make_auth(tmp_path / "home", store)
    auth.add_client("alice", "consumer", "operator", password="alice-password")
    auth.add_client("lamp-agent", "agent", "agent", password="agent-password")
    return auth


@pytest.fixture
def ca(tmp_path, store):
    """The hub's CA, in the same home and store as ``auth``."""
    return CertificateAuthority.load_or_create(tmp_path / "home", store.bucket("certs"))
