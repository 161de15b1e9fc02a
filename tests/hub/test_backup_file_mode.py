"""docs/operations.md, Backup and restore: the archive holds private keys, so
``wothub backup FILE`` writes it with mode 0600, also over an older file or a
``FILE.partial`` left by an interrupted backup (both readable by all here)."""

from __future__ import annotations

import pytest

from tests.support.served import Process, serve_env, wait_listeners

pytestmark = pytest.mark.timeout(120)


async def test_the_backup_is_written_with_mode_0600(tmp_path):
    home = tmp_path / "home"
    env = serve_env(WOTHUB_HOME=str(home))
    hub = Process("wothub serve")
    await hub.start("serve", env=env)
    try:
        await wait_listeners(home, hub)
        fresh = tmp_path / "fresh.tar.gz"
        over_old = tmp_path / "again.tar.gz"
        over_old.write_bytes(b"an older backup")
        over_old.chmod(0o644)
        leftover = tmp_path / "again.tar.gz.partial"  # a backup killed halfway
        leftover.write_bytes(b"half")
        leftover.chmod(0o644)
        for target in (fresh, over_old):
            backup = Process("wothub backup")
            await backup.start("backup", str(target), env=env)
            assert await backup.stop(sig=0) == 0, backup.output  # signal 0: just wait
            assert "backup written to" in backup.output
            assert target.stat().st_mode & 0o777 == 0o600, target
            assert target.stat().st_size > 1000
        assert not leftover.exists()
    finally:
        assert await hub.stop() == 0, hub.output
