"""The installed distribution says what it is: its licence (with the file), authors and
classifiers, as a package index and `pip show` present them."""

import importlib.metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_package_carries_its_license_and_metadata():
    metadata = importlib.metadata.metadata("wothub")
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text().splitlines()[0]
    assert metadata["Author"]
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert metadata["Summary"] and metadata["Requires-Python"] == ">=3.11"
