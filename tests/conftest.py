"""Shared fixtures. Each group lives in its own module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.site",
    "tests.fixtures.servers",
    "tests.fixtures.hostile",
]
