"""jaxnn.check verdicts (conventions §3): a verdict per leaf, bounds a bug cannot inflate, margin.

* A 0.1% bug in a leaf whose gradient is 1e-3 of another leaf's is invisible
  in the normwise error over everything; the verdict per leaf catches it.
* The noise bound of each entry comes from f's own evaluations, the reference
  and the rounding of the rule's output magnitude, never from the rule under
  test: a bug confined to one branch of a ``jnp.where`` (the float32 recomputation
  takes another branch) cannot widen it.
* Correct rules where the gradient is small next to its terms (converged
  softmax cross-entropy, saturated tanh, layer norm at x ~ 1e3) pass with
  error / bound <= 0.5, not on a razor edge.
Everything runs eagerly (``jit=False``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.check import check_grad

jax.config.update("jax_numpy_rank_promotion", "raise")

ALL = ("reference", "finite_difference", "jvp")


# --- a verdict per leaf ----------------------------------------------------------------------------


def two_scales(w, x):
    # d/dw ~ 1, d/dx ~ 1e-3: x's leaf is 1e-3 of w's in norm
    return jnp.sum(jnp.tanh(w)) + 1e-3 * jnp.sum(jnp.sin(x))


def two_scales_grad(scale_x):
    def grad(w, x):
        return 1 - jnp.tanh(w) ** 2, scale_x * 1e-3 * jnp.cos(x)

    return grad


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_small_leaf_bug_caught_by_its_own_verdict(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        rng = np.random.default_rng(1)
        primals = (jnp.asarray(rng.standard_normal(8), dtype), jnp.asarray(rng.standard_normal(8), dtype))
        ok = check_grad(two_scales, primals, grad=two_scales_grad(1.0), reference=two_scales, methods=ALL,
                        jit=False)
        bad = check_grad(two_scales, primals, grad=two_scales_grad(1.001), reference=two_scales, methods=ALL,
                         jit=False)
    assert ok.passed, str(ok)
    assert not bad.passed, str(bad)
    for r in bad.results:
        assert r.status == "FAIL" and r.failed_leaves == ("primals[1]",), (r.method, str(bad))
        assert r.worst_leaf == "primals[1]"
        (_, e_leaf, n_leaf), = [t for t in r.leaf_errors if t[0] == "primals[1]"]
        assert e_leaf > 1e-4 and e_leaf > 10 * (r.threshold + n_leaf)
    assert bad.worst_leaf == "primals[1]"
    # the normwise error over both leaves alone would have passed (for at least one method)
    assert any(r.error <= r.threshold + r.noise for r in bad.results), str(bad)
    assert "primals[1]" in str(bad)
