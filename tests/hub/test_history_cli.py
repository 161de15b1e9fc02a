"""``wothub history THING NAME`` against a real hub over HTTPS (in-process through
``hub.cli.main``, in a thread since main runs its own event loop): a table, CSV, pages
followed up to --limit, downsampling, events, and the hub's refusals."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from hub.cli import main
from tests.support.devices import emit, register, report
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import http_lamp_td

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("clean_environment")]


async def wothub(capsys, *argv) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
async def flags(running) -> list[str]:
    """A viewer's flags, and the lamp with 1,100 brightness values and two events."""
    device = await register(running, td=http_lamp_td())
    for level in range(1100):
        await report(device, "brightness", level % 101)
    await emit(device, "overheated", 80.5)
    await emit(device, "overheated", 81)
    ca = running.hub.config.home / "certs" / "ca.pem"
    return ["--url", running.url, "--ca", ca, "--token", running.add_client("vera")]


async def test_a_table_of_the_newest_values(flags, capsys):
    code, out, err = await wothub(capsys, "history", LAMP, "brightness", "--limit", 3, *flags)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "VALUE"]
    assert [line.split()[1] for line in lines[1:]] == ["89", "88", "87"]  # 1099 % 101 is 89


async def test_csv_across_pages(flags, capsys):
    code, out, err = await wothub(
        capsys, "history", LAMP, "brightness", "--order", "oldest", "--limit", 1050, "--csv",
        *flags,
    )  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(row["value"]) for row in rows] == [level % 101 for level in range(1050)]
    assert all(row["time"].endswith("Z") for row in rows)


async def test_downsampled_and_events(flags, capsys):
    code, out, err = await wothub(
        capsys, "history", LAMP, "brightness", "--step", "1d", "--csv", *flags
    )
    assert code == 0, err
    (row,) = csv.DictReader(io.StringIO(out))
    assert (row["count"], row["min"], row["max"], row["last"]) == ("1100", "0", "100", "89")
    code, out, err = await wothub(capsys, "history", LAMP, "overheated", "--event", *flags)
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["81", "80.5"]


async def test_refusals_are_one_line(flags, capsys):
    code, out, err = await wothub(
        capsys, "history", LAMP, "brightness", "--from", "yesterday", *flags
    )
    assert (code, out) == (1, "")
    assert err.startswith("wothub: the hub answered 400 Bad Request: from must be an RFC 3339")
    code, out, err = await wothub(capsys, "history", LAMP, "nothing", *flags)
    assert code == 1 and "404" in err
