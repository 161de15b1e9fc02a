"""node-wot runs as released: the interop script patches no module of it and loads
nothing but the pinned packages, and those come from the registry with their checksums.

The behaviour itself is checked by test_nodewot.py (node-wot's own observe, subscribe,
read, write and invoke against a real hub); this file makes sure a shim cannot come
back unnoticed. It reads files only, so it runs without node."""

import json
import re
from pathlib import Path

NODEWOT = Path(__file__).parent / "nodewot"
# What patching a node module looks like in CommonJS.
PATCHES = [
    r"require\.cache",
    r"\bModule\._(load|resolveFilename|extensions|cache)",
    r"require\(\s*['\"](node:)?module['\"]\s*\)",
    r"\.prototype\.\w+\s*=[^=]",
    r"Object\.(defineProperty|setPrototypeOf|assign)\(\s*\w+\.prototype",
    r"__proto__",
]


def test_only_the_consumer_script_sits_next_to_the_packages():
    scripts = sorted(p.name for p in NODEWOT.iterdir() if p.suffix in (".js", ".cjs", ".mjs"))
    assert scripts == ["consume.js"]


def test_the_consumer_script_patches_nothing_and_loads_only_the_pinned_packages():
    source = (NODEWOT / "consume.js").read_text()
    for pattern in PATCHES:
        assert not re.search(pattern, source), pattern
    pinned = json.loads((NODEWOT / "package.json").read_text())["dependencies"]
    required = re.findall(r"require\(\s*['\"]([^'\"]+)['\"]\s*\)", source)
    assert required, "consume.js loads node-wot with require()"
    assert "import(" not in source and not re.search(r"^\s*import\s", source, re.M)
    for name in required:
        package = "/".join(name.split("/")[:2]) if name.startswith("@") else name.split("/")[0]
        assert package in pinned, f"consume.js loads {name}, which package.json does not pin"


def test_the_packages_are_pinned_releases_with_checksums_and_no_install_hooks():
    manifest = json.loads((NODEWOT / "package.json").read_text())
    assert set(manifest) & {"scripts", "overrides", "resolutions", "patchedDependencies"} == set()
    for name, version in manifest["dependencies"].items():
        assert name.startswith("@node-wot/"), name
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} {version} is not one release"
    lock = json.loads((NODEWOT / "package-lock.json").read_text())
    packages = {path: entry for path, entry in lock["packages"].items() if path}
    assert packages
    for path, entry in packages.items():
        assert not entry.get("link"), f"{path} is a link to local files"
        assert entry.get("integrity", "").startswith("sha512-"), f"{path} has no checksum"
        assert not entry.get("hasInstallScript"), f"{path} runs a script when installed"
    for name, version in manifest["dependencies"].items():
        assert packages[f"node_modules/{name}"]["version"] == version
