"""``wothub cluster nats-config`` (hub/cluster_cli.py): what each server of a NATS cluster
that someone else runs adds for the hubs, from a home's NATS keys; a home without the
cluster's secrets gets them first. A real nats-server taking the blocks: tests/cluster/
test_external_nats.py."""

from __future__ import annotations

from bindings.nats.server import NatsKeys
from hub import cli
from hub.admin_cli import EXIT_REFUSED
from hub.cluster_secrets import SECRET_FILES, export_secrets


def test_it_prints_the_accounts_and_auth_callout_of_the_homes_keys(
    tmp_path, capsys, clean_environment
):
    keys = NatsKeys.load_or_create(tmp_path / "home" / "nats")
    assert cli.main(["cluster", "nats-config", "--home", str(tmp_path / "home")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# wothub hubs: ")
    assert printed.endswith(keys.auth_config())
    assert keys.issuer.public_key in printed and keys.hub_user.public_key in printed
    assert keys.issuer.seed not in printed and keys.hub_user.seed not in printed  # public


def test_a_home_without_secrets_gets_them_first_and_keeps_them(tmp_path, capsys, clean_environment):
    home = tmp_path / "first"
    assert cli.main(["cluster", "nats-config", "--home", str(home)]) == 0
    first = capsys.readouterr()
    assert "made the cluster's secrets in" in first.err
    assert sorted(export_secrets(home)) == sorted(SECRET_FILES)
    assert first.out.endswith(NatsKeys.load_or_create(home / "nats").auth_config())
    assert cli.main(["cluster", "nats-config", "--home", str(home)]) == 0
    again = capsys.readouterr()
    assert again.out == first.out and again.err == ""  # the same keys, nothing made


def test_unreadable_keys_are_one_line_not_a_traceback(tmp_path, capsys, clean_environment):
    home = tmp_path / "home"
    NatsKeys.load_or_create(home / "nats")
    (home / "nats" / "keys.json").write_text("{not json")
    assert cli.main(["cluster", "nats-config", "--home", str(home)]) == EXIT_REFUSED
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.startswith("wothub: cannot read or make the cluster's secrets in ")
    assert "Traceback" not in printed.err
