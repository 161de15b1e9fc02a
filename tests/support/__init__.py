"""What the tests share: fixtures (a pytest plugin, registered in tests/conftest.py),
TDs and helpers."""
