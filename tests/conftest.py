"""Shared pytest options: `make regress` runs the long regressions that `make test` skips."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--regress", action="store_true", help="also run the long regressions (marked slow)")
    parser.addoption("--synth", action="store_true", help="also run the bitstream builds (marked synth)")


def pytest_collection_modifyitems(config, items):
    skip_synth = pytest.mark.skip(reason="bitstream build: run with `make synth-test` (pytest --synth)")
    for item in items:
        if "synth" in item.keywords and not config.getoption("--synth"):
            item.add_marker(skip_synth)
    if config.getoption("--regress"):
        return
    skip = pytest.mark.skip(reason="long regression: run with `make regress`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
