"""The ``>>>`` examples of every module of the jaxnn.check package run and print what they say.

tests/test_doctests.py collects the top-level modules of jaxnn; the package's
own modules (``jaxnn.check.vjp``, ...) are collected here, the same way.
"""

import doctest
import importlib
import pkgutil

import jax
import numpy as np
import pytest

import jaxnn
import jaxnn.check

MODULES = sorted(info.name for info in pkgutil.iter_modules(jaxnn.check.__path__, "jaxnn.check."))


def test_every_module_is_collected():
    assert {"jaxnn.check.vjp", "jaxnn.check.gradients", "jaxnn.check.perturb"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    globs = {**vars(module), "jax": jax, "jnp": jax.numpy, "np": np, "jaxnn": jaxnn,
             "Network": jaxnn.Network}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    for test in doctest.DocTestFinder().find(module, name, globs=globs):
        runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
