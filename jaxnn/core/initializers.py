"""Parameter initialisation: the params pytree ``[{"W", "b"}, ...]`` (formulas §1).

Weights use ``jax.nn.initializers`` with ``in_axis=-1, out_axis=-2``: the
W^[l] is (n_l, n_{l-1}), i.e. (fan_out, fan_in), the transpose of the
(in, out) layout those initialisers assume by default (without the axes the
scale would be computed from the wrong fan). Biases start at zero.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnn.core.network import Network
from jaxnn.core.validate import as_key

_FAN_AXES = {"in_axis": -1, "out_axis": -2}

INITIALIZERS = {
    # He / Kaiming: Var(W) = 2 / n_{l-1} (truncated normal); for ReLU-family layers.
    "he": jax.nn.initializers.he_normal(**_FAN_AXES),
    # Xavier / Glorot: Var(W) = 2 / (n_{l-1} + n_l) (truncated normal); for tanh / sigmoid.
    "xavier": jax.nn.initializers.glorot_normal(**_FAN_AXES),
    "glorot": jax.nn.initializers.glorot_normal(**_FAN_AXES),
    # The course default: W ~ 0.01 N(0, 1). Fine for shallow nets, vanishes in deep ones.
    "small_normal": jax.nn.initializers.normal(stddev=0.01),
}


def init_params(key: jax.Array, net: Network, init: str = "he", dtype=jnp.float32) -> list[dict]:
    """Initial params for ``net``: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` for l = 1..L.

    Args:
      key: a ``jax.random`` key.
      net: the ``Network``.
      init: ``"he"`` (Var 2/n_{l-1}; default, for ReLU), ``"xavier"`` or
        ``"glorot"`` (Var 2/(n_{l-1}+n_l); for tanh/sigmoid), or
        ``"small_normal"`` (0.01 N(0, 1), the classic course choice).
      dtype: float32 by default; float64 needs ``jax_enable_x64``.

    Returns:
      A list of L dicts of arrays; b is all zeros.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> [p["W"].shape for p in init_params(jax.random.key(0), net)]
    [(3, 2), (1, 3)]
    """
    if not isinstance(net, Network):
        raise ValueError(f"init_params: net must be a jaxnn.Network, got {type(net).__name__}.")
    if init not in INITIALIZERS:
        raise ValueError(f"Unknown init {init!r}. Valid names: {', '.join(INITIALIZERS)}.")
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise ValueError(f"init_params: dtype must be floating point, got {dtype}.")
    initializer = INITIALIZERS[init]
    keys = jax.random.split(as_key(key), net.L)
    return [
        {
            "W": initializer(k, shapes["W"], dtype),
            "b": jnp.zeros(shapes["b"], dtype),
        }
        for k, shapes in zip(keys, net.param_shapes())
    ]
