"""Shared pytest options: `make regress` runs the long regressions that `make test` skips."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--regress", action="store_true", help="also run the long regressions (marked slow)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--regress"):
        return
    skip = pytest.mark.skip(reason="long regression: run with `make regress`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
