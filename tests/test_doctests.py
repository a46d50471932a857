"""The examples in docstrings are run, so they stay true (as Gymnasium does with --doctest-modules)."""

import doctest
import importlib
import pkgutil

import pytest

import spikegym.agents
import spikegym.brains
import spikegym.envs
import spikegym.training

MODULES = sorted(
    f"{pkg.__name__}.{info.name}"
    for pkg in (spikegym.agents, spikegym.brains, spikegym.envs, spikegym.training)
    for info in pkgutil.iter_modules(pkg.__path__)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    if result.attempted == 0:
        pytest.skip("no docstring examples")
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
