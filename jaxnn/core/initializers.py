"""Parameter initialisation: the params pytree ``[{"W", "b"}, ...]`` (formulas §1).

The weights are exactly those of ``jax.nn.initializers`` (``INITIALIZERS``) with
``in_axis=-1, out_axis=-2``: W^[l] is (n_l, n_{l-1}), i.e. (fan_out, fan_in), the
transpose of the (in, out) layout those initialisers assume by default (without
the axes the scale would be computed from the wrong fan). Biases start at zero.

How they are drawn (``draw_params``), and why: ``jax.random`` compiles one
program per shape it draws, and a truncated normal's program takes ~0.3 s to
compile on a CPU, so a new network paid that for every new layer shape. Here
each layer's standard normals are drawn as a flat vector whose length is
rounded up to a power of two (at least 256; layers over ``HOST_MAX`` weights at
their exact size), one compiled program per length, and the host keeps the
first n_l n_{l-1} of them, reshaped and scaled. With JAX's
default ``jax_threefry_partitionable=True`` a value depends only on the key and
its flat position, so the prefix of a longer draw IS the draw of the shape:
the same numbers, bit for bit, as ``INITIALIZERS[init](key, shape)``, from a
handful of programs shared by every network (tests/test_initializers.py checks
the equality; with the flag off, each layer is drawn at its exact size).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

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

# How each name of INITIALIZERS draws W (n_out, n_in): (distribution, its standard deviation).
# The formulas of jax.nn.initializers.variance_scaling / normal, computed the same way: the
# variance rounded to the dtype first, then sqrt and the division in the dtype (IEEE operations,
# as XLA's): the same scale to the last bit.
_TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated to (-2, 2)


def _stddev(init: str, n_out: int, n_in: int, dtype) -> np.ndarray:
    if init == "small_normal":
        return np.asarray(0.01, dtype)
    denominator = n_in if init == "he" else (n_in + n_out) / 2
    variance = np.asarray((2.0 if init == "he" else 1.0) / denominator, dtype)
    return np.sqrt(variance) / np.asarray(_TRUNCATED_STD, dtype)


# Layers up to this many weights are finished on the host; a larger one is drawn at its exact
# size and scaled on the device (no power-of-two overshoot, no host copies of a large array).
HOST_MAX = 1 << 20


def _draw_length(n: int, impl) -> int:
    """n rounded up to a power of two (>= 256): few programs serve every layer size."""
    # only a partitionable threefry draw is the prefix of a longer one (else a value depends on n)
    prefix = jax.config.jax_threefry_partitionable and str(impl) == "threefry2x32"
    if n > HOST_MAX or not prefix:
        return n
    return 1 << max(8, (n - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("n", "truncated", "dtype"))
def _standard_draw(keys, n, truncated, dtype):
    """(*K, n): for each key of keys (*K), n standard values (truncated to (-2, 2), or normal)."""

    def one(key):
        if truncated:
            return jax.random.truncated_normal(key, -2.0, 2.0, (n,), dtype)
        return jax.random.normal(key, (n,), dtype)

    for _ in range(keys.ndim):
        one = jax.vmap(one)
    return one(keys)


def draw_params(keys: jax.Array, net: Network, init: str = "he", dtype=jnp.float32) -> list[dict]:
    """``init_params`` for a whole array of keys: leaves with the keys' shape in front.

    Args:
      keys: typed PRNG keys of any shape K: () for one network, (E,) for an ensemble.
      net: the ``Network``.
      init: a name of ``INITIALIZERS``.
      dtype: a floating dtype.

    Returns:
      ``[{"W": (*K, n_l, n_{l-1}), "b": (*K, n_l, 1)}]``; the network at index i is
      ``init_params(keys[i], net, init, dtype)``. Concrete keys: each layer is one compiled
      draw (shared by every layer of the same rounded length), finished on the host. Keys
      being traced (under ``jit`` or ``vmap``): the same draw and arithmetic in the trace.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> [p["W"].shape for p in draw_params(jax.random.split(jax.random.key(0), 4), net)]
    [(4, 3, 2), (4, 1, 3)]
    """
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    lead = tuple(keys.shape)
    split = lambda k: jax.random.split(k, net.L)  # noqa: E731
    for _ in lead:
        split = jax.vmap(split)
    layer_keys = split(keys)  # (*K, L)
    concrete = not isinstance(keys, jax.core.Tracer)
    impl = jax.random.key_impl(keys)
    if concrete:  # a key per layer from the host: no indexing program per number of layers
        data = np.asarray(jax.random.key_data(layer_keys))
    params = []
    for l, s in enumerate(net.param_shapes()):
        (n_out, n_in), n = s["W"], math.prod(s["W"])
        key = jax.random.wrap_key_data(data[..., l, :], impl=impl) if concrete else layer_keys[..., l]
        draw = _standard_draw(key, _draw_length(n, impl), init != "small_normal", dtype)
        on_host = concrete and n <= HOST_MAX
        xp = np if on_host else jnp
        draw = np.asarray(draw) if on_host else draw
        W = draw[..., :n].reshape(*lead, n_out, n_in) * _stddev(init, n_out, n_in, dtype)
        params.append({"W": W, "b": xp.zeros((*lead, n_out, 1), dtype)})
    # one transfer of everything finished on the host
    return jax.device_put(params) if concrete else params


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
      A list of L dicts of arrays; b is all zeros. W^[l] is ``INITIALIZERS[init]`` of the
      l-th of ``jax.random.split(key, L)`` (the same numbers; drawn as ``draw_params`` says).

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> [p["W"].shape for p in init_params(jax.random.key(0), net)]
    [(3, 2), (1, 3)]
    """
    check_init_arguments(net, init, dtype)
    return draw_params(as_key(key), net, init, dtype)


def check_init_arguments(net, init, dtype, who: str = "init_params") -> None:
    """The checks of ``init_params`` and ``init_ensemble`` (``who``): a ``ValueError`` naming what is wrong.

    >>> check_init_arguments(Network((2, 1), ("sigmoid",), "bce"), "xavier", jnp.float32)
    """
    if not isinstance(net, Network):
        raise ValueError(f"{who}: net must be a jaxnn.Network, got {type(net).__name__}.")
    if init not in INITIALIZERS:
        raise ValueError(f"{who}: unknown init {init!r}. Valid names: {', '.join(INITIALIZERS)}.")
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise ValueError(f"{who}: dtype must be floating point, got {dtype}.")
