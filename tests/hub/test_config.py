"""Configuration: defaults, <home>/wothub.toml, WOTHUB_* variables and flags, in that order
of rising precedence; strict checks naming the file, variable or flag; listeners.json."""

import dataclasses
import json
import os
import stat
import sys
import types
from pathlib import Path

import pytest

from auth.service import AuthConfig
from auth.throttle import ThrottleConfig
from hub import cli, commands
from hub.config import (
    CONFIG_FILE_NAME,
    ENV_VARS,
    FLAGS,
    Config,
    ConfigError,
    build_config,
    default_home,
)
from hub.listeners import (
    LISTENERS_FILE,
    is_running,
    read_listeners,
    remove_listeners,
    write_listeners,
)


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home


def write_toml(home, text, name=CONFIG_FILE_NAME):
    path = home / name
    path.write_text(text)
    return path


def build(home, env=None, **flags):
    return build_config({"home": home, **flags}, env or {})


# -- defaults and the file ------------------------------------------------------------------


def test_defaults_without_file_or_environment(home):
    config = build(home)
    assert config == Config(home=home)
    assert config.config_file is None
    assert (config.http_host, config.http_port, config.public_url) == ("127.0.0.1", 8444, None)
    assert config.host == config.mqtt_host == config.nats_host == "127.0.0.1"
    assert config.only_loopback  # until opened (docs/configuration.md)
    assert (config.mqtt_port, config.nats_port, config.max_body_bytes) == (8883, 4222, 1048576)
    assert (config.flush_interval, config.notification_log_size, config.sync_wait) == (
        1.0,
        10000,
        2.0,
    )
    assert config.token_lifetime is config.session_lifetime is config.login_throttle is None


def test_every_option_from_the_file(home):
    path = write_toml(
        home,
        """
log_level = "debug"
store = "memory"
server_names = ["hub.lan", "192.168.1.10"]

[http]
host = "127.0.0.1"
port = 9443
public_url = "https://hub.lan:9443/"
max_body_bytes = 65536
sync_wait = 0.5

[mqtt]
port = 18883

[nats]
port = 14222

[auth]
token_lifetime = { consumer = 600, agent = 7200.5 }
session_lifetime = { service = 86400 }
refresh_grace = { agent = 600 }
hash_workers = 2
hash_queue = 4
verified_ttl = 60

[auth.login_throttle]
source_free = 5
source_base_delay = 2
account_max_delay = 60.0
max_tracked = 1000

[router]
flush_interval = 0.25
notification_log_size = 500
""",
    )
    config = build(home)
    assert config == Config(
        home=home,
        store_backend="memory",
        log_level="DEBUG",
        server_names=("hub.lan", "192.168.1.10"),
        http_host="127.0.0.1",
        http_port=9443,
        public_url="https://hub.lan:9443",
        max_body_bytes=65536,
        sync_wait=0.5,
        mqtt_port=18883,
        nats_port=14222,
        token_lifetime={"consumer": 600.0, "agent": 7200.5},
        session_lifetime={"service": 86400.0},
        refresh_grace={"agent": 600.0},
        hash_workers=2,
        hash_queue=4,
        verified_ttl=60.0,
        login_throttle={
            "source_free": 5,
            "source_base_delay": 2.0,
            "account_max_delay": 60.0,
            "max_tracked": 1000,
        },
        flush_interval=0.25,
        notification_log_size=500,
        config_file=path,
    )
    assert isinstance(config.login_throttle["source_base_delay"], float)


def test_config_flag_names_another_file(home, tmp_path):
    write_toml(home, "[http]\nport = 1111\n")
    other = write_toml(tmp_path, "[http]\nport = 2222\n", name="other.toml")
    config = build(home, config_file=other)
    assert (config.http_port, config.config_file) == (2222, other)


def test_a_named_file_must_exist_the_default_one_need_not(home, tmp_path):
    assert build(home).config_file is None
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="not found") as caught:
        build(home, config_file=missing)
    assert str(missing) in str(caught.value)


def test_home_from_environment_and_default_home(tmp_path):
    write_toml(tmp_path, "log_level = 'ERROR'\n")
    config = build_config({}, {"WOTHUB_HOME": str(tmp_path)})
    assert (config.home, config.log_level) == (tmp_path, "ERROR")
    assert default_home({"WOTHUB_HOME": "/srv/wot"}) == Path("/srv/wot")
    assert default_home({"XDG_DATA_HOME": "/data"}) == Path("/data/wothub")
    assert default_home({}) == Path.home() / ".local" / "share" / "wothub"


# -- precedence: flag > environment > file > default ------------------------------------------

PRECEDENCE = [
    # field, TOML line (with its table), env text, flag value, expected from file/env/flag
    ("http_port", "[http]\nport = 1001", "1002", "1003", (1001, 1002, 1003)),
    ("host", "host = '10.0.3.1'", "10.0.3.2", "10.0.3.3", None),
    ("http_host", "[http]\nhost = '10.0.0.1'", "10.0.0.2", "10.0.0.3", None),
    ("public_url", "[http]\npublic_url = 'https://a'", "https://b", "https://c", None),
    ("mqtt_port", "[mqtt]\nport = 2001", "2002", "2003", (2001, 2002, 2003)),
    ("nats_port", "[nats]\nport = 3001", "3002", "3003", (3001, 3002, 3003)),
    ("log_level", "log_level = 'DEBUG'", "warning", "error", ("DEBUG", "WARNING", "ERROR")),
    ("log_format", "log_format = 'json'", "TEXT", "json", ("json", "text", "json")),
    ("event_loop", "event_loop = 'asyncio'", "UVLOOP", "auto", ("asyncio", "uvloop", "auto")),
    ("store_backend", "store = 'memory'", "leveldb", "memory", ("memory", "leveldb", "memory")),
    ("server_names", "server_names = ['f']", "e1, e2", ["g"], (("f",), ("e1", "e2"), ("g",))),
    ("mqtt_enabled", "[mqtt]\nenabled = false", "yes", False, (False, True, False)),
    ("mqtt_host", "[mqtt]\nhost = '10.0.1.1'", "10.0.1.2", "10.0.1.3", None),
    ("mqtt_plain_port", "[mqtt]\nplain_port = 1884", "1885", "1886", (1884, 1885, 1886)),
    (
        "mqtt_client_certificate",
        "[mqtt]\nclient_certificate = 'require'",
        "off",
        "require",
        ("require", "off", "require"),
    ),
    ("nats_enabled", "[nats]\nenabled = false", "on", False, (False, True, False)),
    ("nats_host", "[nats]\nhost = '10.0.2.1'", "10.0.2.2", "10.0.2.3", None),
    ("nats_ws_port", "[nats]\nws_port = 4301", "4302", "4303", (4301, 4302, 4303)),
    ("nats_url", "[nats]\nurl = 'tls://a:4222'", "nats://b:4222", "tls://c:1", None),
    ("cluster_node", "[cluster]\nnode = 'n1'\nroutes = ['b:1']", "n2", "n3", None),
    ("cluster_name", "[cluster]\nname = 'c1'", "c2", "c3", None),
    ("cluster_host", "[cluster]\nhost = '10.0.4.1'", "10.0.4.2", "10.0.4.3", None),
    ("cluster_port", "[cluster]\nport = 6001", "6002", "6003", (6001, 6002, 6003)),
    (
        "cluster_routes",
        "[cluster]\nroutes = ['a:6222']",
        "b:6222, c:6222",
        ["d:1"],
        (("a:6222",), ("b:6222", "c:6222"), ("d:1",)),
    ),
    ("cluster_replicas", "[cluster]\nreplicas = 1", "3", "5", (1, 3, 5)),
    ("workers", "workers = 2", "3", "4", (2, 3, 4)),
]


@pytest.mark.parametrize(("field", "toml", "env_text", "flag", "expected"), PRECEDENCE)
def test_flag_over_environment_over_file_over_default(home, field, toml, env_text, flag, expected):
    from_file, from_env, from_flag = expected or (
        toml.split("'")[1],
        env_text,
        flag,
    )
    variable = next(name for name, f in ENV_VARS.items() if f == field)
    default = getattr(Config(home=home), field)

    assert getattr(build(home), field) == default
    write_toml(home, toml + "\n")
    assert getattr(build(home), field) == from_file
    assert getattr(build(home, {variable: env_text}), field) == from_env
    assert getattr(build(home, {variable: env_text}, **{field: flag}), field) == from_flag
    # A flag that was not given (None) leaves the environment's value.
    assert getattr(build(home, {variable: env_text}, **{field: None}), field) == from_env


def test_every_listener_binds_host_unless_it_has_its_own(home):
    write_toml(home, "host = '0.0.0.0'\n[mqtt]\nhost = '10.0.1.1'\n")
    config = build(home)
    assert (config.http_host, config.mqtt_host, config.nats_host) == (
        "0.0.0.0",
        "10.0.1.1",
        "0.0.0.0",
    )
    assert not config.only_loopback
    flagged = build(home, {"WOTHUB_HOST": "10.0.9.9"}, host="127.0.0.1")
    assert (flagged.http_host, flagged.mqtt_host) == ("127.0.0.1", "10.0.1.1")


def test_every_flag_and_variable_is_tested_for_precedence():
    # Every option has a variable; the common ones a `wothub serve` flag too.
    assert {row[0] for row in PRECEDENCE} == set(ENV_VARS.values()) >= set(FLAGS)


def test_cluster_mode_and_its_replicas(home):
    assert not build(home).cluster_mode and build(home).store_name == "leveldb"
    node = build(home, cluster_node="n1", cluster_routes=["10.0.0.2:6222", "10.0.0.3:6222"])
    assert node.cluster_mode and node.store_name == "jetstream"
    assert node.replicas == 3  # itself and its two routes
    assert build(home, cluster_node="n1", cluster_routes=["b:1"]).replicas == 2
    many = [f"10.0.0.{i}:6222" for i in range(2, 7)]
    assert build(home, cluster_node="n1", cluster_routes=many).replicas == 3  # at most 3
    one_route = {"cluster_node": "n1", "cluster_routes": ["b:1"]}
    assert build(home, cluster_replicas="5", **one_route).replicas == 5
    assert build(home, **one_route).cluster_host == "127.0.0.1"  # host's


def test_a_cluster_node_needs_routes_unless_its_nats_server_is_elsewhere(home):
    with pytest.raises(ConfigError, match="needs the route addresses"):
        build(home, cluster_node="n1")
    assert build(home, cluster_node="n1", nats_url="tls://nats.lan:4222").cluster_mode


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"cluster_node": "no spaces"}, "--node"),
        ({"cluster_node": "n1", "cluster_routes": ["10.0.0.2"]}, "--route"),
        ({"cluster_node": "n1", "cluster_routes": ["10.0.0.2:99999"]}, "--route"),
        ({"cluster_node": "n1", "cluster_routes": ["b:1"], "cluster_replicas": "7"}, "--replicas"),
    ],
)
def test_bad_cluster_options_are_named(home, flags, named):
    with pytest.raises(ConfigError, match=named):
        build(home, **flags)


def test_cluster_mode_needs_nats_server(home):
    write_toml(home, "[nats]\nenabled = false\n[mqtt]\nenabled = false\n")
    assert not build(home).nats_enabled  # fine on one node
    with pytest.raises(ConfigError, match="cluster mode runs on nats-server"):
        build(home, cluster_node="n1", cluster_routes=["b:1"])


def test_workers_need_the_hubs_own_nats_server(home):
    assert build(home).workers == 1 and build(home).store_name == "leveldb"
    assert build(home, workers="4").store_name == "jetstream"
    with pytest.raises(ConfigError, match="--workers"):
        build(home, workers="0")
    with pytest.raises(ConfigError, match="workers > 1 needs"):
        build(home, {"WOTHUB_NATS_URL": "tls://nats.lan:4222"}, workers="2")
    write_toml(home, "[nats]\nenabled = false\n")
    with pytest.raises(ConfigError, match="workers > 1 needs"):
        build(home, workers="2")
    with pytest.raises(ConfigError, match="not supported yet"):
        build(home, {"WOTHUB_NATS_ENABLED": "true"}, workers="2", cluster_node="n1")


def test_empty_variable_is_unset(home):
    write_toml(home, "[http]\nport = 1001\n")
    assert build(home, {"WOTHUB_HTTP_PORT": ""}).http_port == 1001


@pytest.mark.parametrize("source", ["file", "env", "flag", "typed flag"])
def test_port_zero_means_any_free_port(home, source):
    if source == "file":
        write_toml(home, "[http]\nport = 0\n")
        config = build(home)
    elif source == "env":
        config = build(home, {"WOTHUB_HTTP_PORT": "0"})
    else:
        config = build(home, http_port="0" if source == "flag" else 0)
    assert config.http_port == 0


# -- errors in the file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("prot = 1\n", "prot", "unknown key"),
        ("[http]\nprot = 1\n", "http.prot", "unknown key"),
        ("[htp]\nport = 1\n", "htp", "unknown key"),
        ("[auth.token_lifetime]\nconsumers = 60\n", "auth.token_lifetime.consumers", "unknown"),
        (
            "[auth.login_throttle]\nsource_fre = 1\n",
            "auth.login_throttle.source_fre",
            "unknown",
        ),
        ("home = '/tmp'\n", "home", "--home"),
        ("[http]\nport = '8444'\n", "http.port", "expected a port number"),
        ("[http]\nport = 70000\n", "http.port", "got integer 70000"),
        ("[http]\nport = true\n", "http.port", "got boolean"),
        ("[http]\nport = 8444.0\n", "http.port", "got float"),
        ("[http]\npublic_url = 'ftp://hub'\n", "http.public_url", "https://"),
        ("[http]\nmax_body_bytes = 0\n", "http.max_body_bytes", "at least 1"),
        ("[http]\nsync_wait = -1\n", "http.sync_wait", "0 or more"),
        ("http = 8444\n", "http", "expected a table"),
        ("server_names = 'hub.lan'\n", "server_names", "list"),
        ("server_names = ['ok', 3]\n", "server_names", "list"),
        ("log_level = 'LOUD'\n", "log_level", "DEBUG, INFO"),
        ("store = 'nosuch'\n", "store", "leveldb"),
        ("[router]\nflush_interval = 0\n", "router.flush_interval", "more than 0"),
        ("[router]\nflush_interval = inf\n", "router.flush_interval", "more than 0"),
        ("[router]\nnotification_log_size = 0\n", "router.notification_log_size", "at least 1"),
        ("[auth]\ntoken_lifetime = 60\n", "auth.token_lifetime", "expected a table"),
        ("[auth.session_lifetime]\nagent = 'a year'\n", "auth.session_lifetime.agent", "seconds"),
    ],
)
def test_file_errors_name_file_and_key(home, text, key, words):
    path = write_toml(home, text)
    with pytest.raises(ConfigError) as caught:
        build(home)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert words in message
    assert (caught.value.source, caught.value.key) == (str(path), key)
    assert "\n" not in message


@pytest.mark.parametrize(
    "text", ["[http\nport = 1\n", "log_level = \n", "a = 1\na = 2\n", "port = 08\n"]
)
def test_toml_syntax_error_names_file_and_line(home, text):
    path = write_toml(home, text)
    with pytest.raises(ConfigError) as caught:
        build(home)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line" in message
    assert caught.value.key is None


def test_unreadable_file_is_a_config_error(home):
    (home / CONFIG_FILE_NAME).mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        build(home)
    (home / CONFIG_FILE_NAME).rmdir()
    (home / CONFIG_FILE_NAME).write_bytes(b"log_level = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        build(home)


# -- errors in variables and flags ------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("WOTHUB_HTTP_PORT", "abc"),
        ("WOTHUB_HTTP_PORT", "70000"),
        ("WOTHUB_HTTP_PORT", "-1"),
        ("WOTHUB_MQTT_PORT", "1.5"),
        ("WOTHUB_NATS_PORT", "many"),
        ("WOTHUB_LOG_LEVEL", "LOUD"),
        ("WOTHUB_STORE", "nosuch"),
        ("WOTHUB_PUBLIC_URL", "hub.lan:8444"),
        ("WOTHUB_PUBLIC_URL", "https://hub.lan:99999"),
        ("WOTHUB_HTTP_HOST", "two words"),
    ],
)
def test_environment_errors_name_the_variable(home, variable, text):
    with pytest.raises(ConfigError) as caught:
        build(home, {variable: text})
    message = str(caught.value)
    assert message.startswith(f"environment variable {variable}: expected ")
    assert repr(text) in message
    assert caught.value.key == variable


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("http_port", "abc", "--http-port"),
        ("http_port", 70000, "--http-port"),
        ("mqtt_port", "-5", "--mqtt-port"),
        ("log_level", "LOUD", "--log-level"),
        ("store_backend", "nosuch", "--store"),
        ("server_names", ["ok", ""], "--server-name"),
    ],
)
def test_flag_errors_name_the_flag(home, field, value, flag):
    with pytest.raises(ConfigError, match=f"^{flag}: expected "):
        build(home, **{field: value})


def test_a_flag_that_is_no_option_is_a_programming_error(home):
    with pytest.raises(TypeError, match="token_lifetime"):
        build(home, token_lifetime={"consumer": 1})


def test_bad_environment_is_reported_even_when_a_flag_overrides_it(home):
    # Every source is checked: a broken variable is a mistake worth hearing about.
    with pytest.raises(ConfigError, match="WOTHUB_HTTP_PORT"):
        build(home, {"WOTHUB_HTTP_PORT": "abc"}, http_port=1)


# -- the auth package's configuration -------------------------------------------------------


def test_auth_config_defaults_are_the_auth_packages(home):
    assert build(home).auth_config() == AuthConfig()


def test_auth_config_overrides_only_what_is_set(home):
    write_toml(
        home,
        "[auth]\ntoken_lifetime = { consumer = 60 }\n[auth.login_throttle]\nsource_free = 10\n",
    )
    auth = build(home).auth_config()
    defaults = AuthConfig()
    assert auth.token_lifetime == {**defaults.token_lifetime, "consumer": 60.0}
    assert auth.session_lifetime == defaults.session_lifetime
    assert auth.throttle == dataclasses.replace(defaults.throttle, source_free=10)
    assert auth.hash_cost == defaults.hash_cost
    assert (auth.hash_workers, auth.hash_queue) == (defaults.hash_workers, defaults.hash_queue)
    assert auth.refresh_grace == defaults.refresh_grace


def test_login_throttle_keys_are_the_throttle_config_fields(home):
    fields = {f.name: f.default for f in dataclasses.fields(ThrottleConfig)}
    write_toml(
        home, "[auth.login_throttle]\n" + "".join(f"{name} = {v}\n" for name, v in fields.items())
    )
    assert build(home).auth_config().throttle == ThrottleConfig()


# -- listeners.json ---------------------------------------------------------------------------

HTTPS = {"https": {"host": "127.0.0.1", "port": 8444, "url": "https://127.0.0.1:8444"}}


def test_listeners_round_trip(home):
    path = write_listeners(home, HTTPS)
    assert path == home / LISTENERS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    document = read_listeners(home)
    assert document["pid"] == os.getpid()
    local = {"local_url": "https://127.0.0.1:8444"}
    assert document["listeners"] == {"https": {**HTTPS["https"], **local}}
    assert document["started"].endswith("Z") and "T" in document["started"]
    assert json.loads(path.read_text()) == document
    assert is_running(document)


def test_a_wildcard_listener_is_reached_locally_on_loopback(home):
    # 0.0.0.0 is no address a client can verify the hub's certificate for.
    write_listeners(
        home,
        {
            "https": {"host": "0.0.0.0", "port": 8444, "url": "https://hub.lan:8444"},
            "mqtts": {"host": "::", "port": 8883, "url": "mqtts://hub.lan:8883"},
            "nats": {"host": "0.0.0.0", "port": 4222, "local_url": "nats://0.0.0.0:4222"},
            "named": {"host": "hub.lan", "port": 1, "url": "https://hub.lan:1"},
        },
    )
    local = {name: v.get("local_url") for name, v in read_listeners(home)["listeners"].items()}
    assert local == {
        "https": "https://127.0.0.1:8444",
        "mqtts": "mqtts://[::1]:8883",
        "nats": "nats://127.0.0.1:4222",
        "named": "https://hub.lan:1",
    }


def test_listeners_rewrite_replaces_the_file_and_keeps_the_start_time(home):
    first = read_listeners(home) or {}
    assert first == {}
    write_listeners(home, HTTPS, started="2026-01-01T00:00:00.000Z")
    mqtt = {"mqtt": {"host": "0.0.0.0", "port": 8883, "url": "mqtts://hub:8883"}}
    write_listeners(home, {**HTTPS, **mqtt})
    document = read_listeners(home)
    assert document["started"] == "2026-01-01T00:00:00.000Z"
    assert set(document["listeners"]) == {"https", "mqtt"}
    assert [p.name for p in home.iterdir()] == [LISTENERS_FILE]  # no temporary files left


def test_listeners_failed_write_leaves_the_old_file(home, monkeypatch):
    write_listeners(home, HTTPS)
    before = (home / LISTENERS_FILE).read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr("hub.listeners.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write_listeners(home, {})
    assert (home / LISTENERS_FILE).read_bytes() == before
    assert [p.name for p in home.iterdir()] == [LISTENERS_FILE]


def test_remove_listeners_only_removes_our_own_file(home):
    assert remove_listeners(home) is False  # nothing there
    other = os.getpid() + 1
    write_listeners(home, HTTPS, pid=other)
    assert remove_listeners(home) is False
    assert read_listeners(home)["pid"] == other
    write_listeners(home, HTTPS)
    assert remove_listeners(home) is True
    assert not (home / LISTENERS_FILE).exists()
    assert read_listeners(home) is None


def test_read_listeners_ignores_garbage(home):
    (home / LISTENERS_FILE).write_text("{not json")
    assert read_listeners(home) is None
    (home / LISTENERS_FILE).write_text('{"pid": "1"}')
    assert read_listeners(home) is None
    assert remove_listeners(home) is False
    assert (home / LISTENERS_FILE).exists()


def test_is_running_for_a_gone_process():
    assert not is_running({"pid": 2**22 + 12345})
    assert not is_running({"pid": 0})
    assert not is_running({})


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch):
    for name in (*ENV_VARS, "WOTHUB_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_runtime(monkeypatch):
    """hub.runtime replaced, so `wothub serve` runs in-process without starting a hub."""
    served = []
    module = types.ModuleType("hub.runtime")

    def serve(config):
        served.append(config)
        return 0

    module.serve = serve
    monkeypatch.setitem(sys.modules, "hub.runtime", module)
    return served


def test_serve_with_bad_config_file_exits_2_with_one_line(home, capsys, clean_env, fake_runtime):
    bad = write_toml(home, "[http]\nprot = 8444\n", name="bad.toml")
    assert cli.main(["serve", "--home", str(home), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(bad) in err and "http.prot" in err and "unknown key" in err
    assert "Traceback" not in err
    assert fake_runtime == []


def test_serve_with_bad_flag_or_variable_exits_2(
    home, capsys, clean_env, fake_runtime, monkeypatch
):
    assert cli.main(["serve", "--home", str(home), "--http-port", "abc"]) == 2
    assert "--http-port: expected a port number" in capsys.readouterr().err
    monkeypatch.setenv("WOTHUB_NATS_PORT", "70000")
    assert cli.main(["serve", "--home", str(home)]) == 2
    assert "WOTHUB_NATS_PORT" in capsys.readouterr().err
    assert fake_runtime == []


def test_serve_merges_flags_environment_and_file(home, clean_env, fake_runtime, monkeypatch):
    write_toml(home, "log_level = 'WARNING'\n[http]\nport = 1001\nhost = '127.0.0.1'\n")
    monkeypatch.setenv("WOTHUB_HTTP_PORT", "1002")
    monkeypatch.setenv("WOTHUB_SERVER_NAMES", "env.lan")
    argv = ["serve", "--home", str(home), "--http-port", "0", "--server-name", "a.lan"]
    assert cli.main([*argv, "--server-name", "b.lan"]) == 0
    (config,) = fake_runtime
    assert config.home == home
    assert config.http_port == 0  # flag
    assert config.server_names == ("a.lan", "b.lan")  # flags replace the variable's list
    assert config.http_host == "127.0.0.1"  # file
    assert config.log_level == "WARNING"  # file
    assert config.nats_port == 4222  # default
    assert config.config_file == home / CONFIG_FILE_NAME


def test_usage_errors_and_help_return_codes(capsys):
    assert cli.main([]) == 2
    assert cli.main(["serve", "--no-such-flag"]) == 2
    assert cli.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--home", "--config", *FLAGS.values()):
        assert flag in out


def test_other_modules_add_subcommands(home, capsys, clean_env, monkeypatch):
    monkeypatch.setattr(commands, "_commands", dict(commands._commands))
    seen = []

    def configure(parser):
        commands.add_home_arguments(parser)
        parser.add_argument("action", choices=["list"])

    def run(args):
        seen.append((args.action, commands.config_from_args(args).home))
        return 7

    commands.add_command("example-command", "an example", configure, run)
    with pytest.raises(ValueError, match="already registered"):
        commands.add_command("example-command", "again", configure, run)
    assert cli.main(["example-command", "--home", str(home), "list"]) == 7
    assert seen == [("list", home)]
    assert "example-command" in cli.build_parser().format_help()
    # A config error in any subcommand is reported the same way.
    write_toml(home, "nope = 1\n")
    assert cli.main(["example-command", "--home", str(home), "list"]) == 2
    assert "nope" in capsys.readouterr().err
