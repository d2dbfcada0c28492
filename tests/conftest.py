"""Fixtures shared by every test folder."""

pytest_plugins = ["tests.support.registry", "tests.support.demo"]
