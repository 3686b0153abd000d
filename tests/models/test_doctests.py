"""The examples in the model modules' docstrings run and hold.

Each module is imported by its one real name, ``trialwatch.models.<name>`` (pytest's
``--doctest-modules`` on the folder would import it a second time under another).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import trialwatch.models

MODULES = sorted(
    f"trialwatch.models.{info.name}" for info in pkgutil.iter_modules(trialwatch.models.__path__)
)
# Modules whose docstrings hold examples: a test that ran none of them would prove nothing.
WITH_EXAMPLES = {"trialwatch.models.state", "trialwatch.models.features"}


def test_every_module_with_examples_is_collected():
    assert set(MODULES) >= WITH_EXAMPLES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str):
    module = importlib.import_module(name)
    result = doctest.testmod(module, verbose=False, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    if name in WITH_EXAMPLES:
        assert result.attempted > 0, f"no example of {name} ran"
