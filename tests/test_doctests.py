"""Every ``>>>`` example in the jaxnn docstrings runs and prints what it says.

One case per module of the package (private modules too), run by the standard
library ``doctest`` with ``jax``, ``jnp``, ``np`` and ``jaxnn`` in scope on top
of the module's own namespace. conftest.py's ``jax_numpy_rank_promotion="raise"``
applies, so an example that leans on implicit rank promotion fails here.

The examples share one tiny network, ``Network((2, 3, 1), ("tanh", "sigmoid"),
"bce")`` with X: (2, 4): eager JAX compiles each primitive once per shape, so
a new shape in an example costs compilation time, not arithmetic.
"""

import doctest
import importlib
import inspect
import pkgutil

import jax
import numpy as np
import pytest

import jaxnn

# importing jaxnn.__main__ runs the CLI (and exits): an entry point with no examples
# walk_packages: the submodules of jaxnn.check and jaxnn.datasets too (a package's __init__ only
# re-exports, and doctest skips re-exported functions)
MODULES = sorted(info.name for info in pkgutil.walk_packages(jaxnn.__path__, "jaxnn.")
                 if info.name != "jaxnn.__main__")
OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_every_module_is_collected():
    assert {"jaxnn.core.backward", "jaxnn.train.training", "jaxnn.core.tree",
            "jaxnn.datasets.core"} <= set(MODULES)


def test_every_public_function_has_an_example():
    public = {name: getattr(jaxnn, name) for name in jaxnn.__all__}
    missing = sorted(name for name, obj in public.items()
                     if callable(obj) and not inspect.isclass(obj) and ">>>" not in (obj.__doc__ or ""))
    assert not missing, f"add a short >>> example (shapes in the notation) to: {missing}"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    globs = {**vars(module), "jax": jax, "jnp": jax.numpy, "np": np, "jaxnn": jaxnn}
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    out = []
    # the finder copies globs for each docstring, so examples do not leak names into each other
    for test in doctest.DocTestFinder().find(module, name, globs=globs):
        runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
