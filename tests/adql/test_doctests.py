"""Every rewrite rule and helper of the adql package shows an example; run them."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import adql

MODULES = sorted(info.name for info in pkgutil.iter_modules(adql.__path__, "adql."))


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_rewrite_rules_have_examples() -> None:
    description = importlib.import_module("adql.description")
    postgres = importlib.import_module("adql.postgres")
    resolve = importlib.import_module("adql.resolve")
    pipeline = importlib.import_module("adql.translate")
    rules = (
        resolve.resolve,
        postgres.to_postgres,
        pipeline.apply_row_limit,
        pipeline.finalize,
        pipeline.translate,
        description.describe,
    )
    for function in rules:
        assert ">>>" in (function.__doc__ or ""), f"{function.__qualname__} has no example"
