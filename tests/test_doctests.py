"""The examples in the public docstrings run and print what they show."""

import doctest
import importlib

import pytest

MODULES = ["workload", "recording", "schemes", "events", "hardware", "cost", "search", "cli", "tasks.fidelity", "tasks.anchors"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"else_dse.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0, f"else_dse.{name} has no docstring example"
