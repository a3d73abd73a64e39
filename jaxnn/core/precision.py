"""Mixed precision: forward and backward in bfloat16, params and optimizer state in float32.

The usual TPU recipe. Inside a step the float32 params, X and Y are cast to
the compute dtype (bfloat16), the forward pass (§1), cost (§3) and
backward pass (§4) run entirely in it (matmuls on a TPU's MXU accumulate in
float32 and round their output to bfloat16), and the cost and gradients are
cast back to the params' dtype before the update (§5 or optax), so the
running params and the optimizer's moments never lose precision:

    params (f32) --cast--> bf16 --forward/backward--> grads (bf16) --cast--> f32 --update--> params (f32)

Accuracy. bfloat16 keeps 8 significant bits: unit roundoff u = 2^-8 ≈ 3.9e-3
(float32: 2^-24 ≈ 6e-8). A gradient computed in bfloat16 is therefore only
good to a few u, and the manual and autodiff gradients, which round in
different orders, disagree by a few u too. ``BF16_GRAD_TOL`` = 16 u = 0.0625
is the normwise relative error allowed between them (conventions §3's
formula); the derivation of the bound and the measured errors are in
``tests/test_precision.py``. The correctness of the derivation itself is
established in float32/float64 (≤ 1e-5 / 1e-10); the bfloat16 check verifies
that the same code runs in bfloat16 without upcasts, NaNs or lost gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxnn.core.backward import value_and_autodiff_grad, value_and_manual_grad
from jaxnn.core.network import Network

Array = jax.Array

BF16_UNIT_ROUNDOFF = 2.0**-8
BF16_GRAD_TOL = 16 * BF16_UNIT_ROUNDOFF


def cast_floating(tree, dtype):
    """Cast every floating-point array (and Python float) of ``tree`` to ``dtype``.

    Integer, key, string and other leaves are left as they are.

    Args:
      tree: any pytree.
      dtype: the floating dtype to cast to.

    >>> cast_floating([{"W": jnp.ones((2, 2)), "b": jnp.zeros((2, 1))}], jnp.bfloat16)[0]["W"].dtype
    dtype(bfloat16)
    """
    def cast(x):
        if isinstance(x, float) or (hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)):
            return jnp.asarray(x).astype(dtype)
        return x

    return jax.tree.map(cast, tree)


def with_compute_dtype(fn: Callable, dtype=jnp.bfloat16) -> Callable:
    """Wrap ``fn(params, *args, **kw) -> (J, grads, *rest)`` to compute in ``dtype``: THE mixed precision.

    params and the floating positional args (X: (n_x, m), Y: (n_L, m), per-example weights,
    λ) are cast to ``dtype`` on the way in (keyword arguments are passed as they are); J and
    anything after the grads are cast back to the dtype of params' first leaf, and every
    gradient leaf to the dtype of the matching params leaf, so the update and the optimizer
    state stay in the params' precision. The training step (``jaxnn.train.step``) uses it too.

    Args:
      fn: e.g. ``jaxnn.value_and_manual_grad``, returning ``(J, grads)`` or ``(J, grads, ...)``.
      dtype: the compute dtype (bfloat16).

    Returns:
      The wrapped function, with the same signature.

    >>> vg = jax.jit(with_compute_dtype(jaxnn.value_and_manual_grad, jnp.bfloat16), static_argnames="net")
    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> J, grads = vg(params, jnp.ones((2, 4)), jnp.ones((1, 4)), net)
    >>> J.dtype, grads[0]["W"].dtype
    (dtype('float32'), dtype('float32'))
    """
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"with_compute_dtype: dtype must be floating point, got {dtype}.")

    def wrapped(params, *args, **kwargs):
        J, grads, *rest = fn(cast_floating(params, dtype), *cast_floating(args, dtype), **kwargs)
        out_dtype = jax.tree.leaves(params)[0].dtype
        grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
        return (J.astype(out_dtype), grads, *cast_floating(rest, out_dtype))

    wrapped.__name__ = f"{getattr(fn, '__name__', 'value_and_grad')}_{dtype.name}"
    wrapped.__doc__ = f"{wrapped.__name__}: ``{getattr(fn, '__name__', '')}`` " \
        f"computed in {dtype.name}, returned in the params' dtype."
    return wrapped


def value_and_manual_grad_bf16(params, X, Y, net: Network, **kwargs):
    """The hand-derived ``value_and_manual_grad`` computed in bfloat16.

    The forward pass (formulas §1), cost (§3) and hand-derived backward pass (§4)
    run in bfloat16. params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` (float32);
    X: (n_x, m); Y: (n_L, m). Returns ``(J, grads)``: J a scalar () and grads with
    the structure of params, both in the params' dtype, good to about
    ``BF16_GRAD_TOL`` relative to the float32 gradient.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` (float32).
      X: (n_x, m).
      Y: (n_L, m).
      net: the ``Network``.
      **kwargs: l2, key, keep_prob, w, as in ``value_and_manual_grad``.

    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> vg = jax.jit(value_and_manual_grad_bf16, static_argnames="net")  # net is static
    >>> J, grads = vg(params, jnp.ones((2, 4)), jnp.ones((1, 4)), net)
    >>> J.dtype, grads[0]["W"].dtype
    (dtype('float32'), dtype('float32'))
    """
    return with_compute_dtype(value_and_manual_grad, jnp.bfloat16)(params, X, Y, net, **kwargs)


def value_and_autodiff_grad_bf16(params, X, Y, net: Network, **kwargs):
    """``value_and_autodiff_grad`` computed in bfloat16.

    ``jax.grad`` of the cost (§3), taken in bfloat16. params:
    ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` (float32); X: (n_x, m); Y: (n_L, m).
    Returns ``(J, grads)`` in the params' dtype. The reference that
    ``value_and_manual_grad_bf16`` is checked against: the two round in different
    orders, so they agree to ``BF16_GRAD_TOL`` (conventions §3's relative error).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]`` (float32).
      X: (n_x, m).
      Y: (n_L, m).
      net: the ``Network``.
      **kwargs: l2, key, keep_prob, w, as in ``value_and_manual_grad``.

    >>> net = jaxnn.Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> _, g_auto = jax.jit(value_and_autodiff_grad_bf16, static_argnames="net")(params, X, Y, net)
    >>> _, g_manual = jax.jit(value_and_manual_grad_bf16, static_argnames="net")(params, X, Y, net)
    >>> bool(jaxnn.relative_error(g_auto, g_manual) < BF16_GRAD_TOL)
    True
    """
    return with_compute_dtype(value_and_autodiff_grad, jnp.bfloat16)(params, X, Y, net, **kwargs)


__all__ = [
    "BF16_GRAD_TOL",
    "BF16_UNIT_ROUNDOFF",
    "cast_floating",
    "value_and_autodiff_grad_bf16",
    "value_and_manual_grad_bf16",
    "with_compute_dtype",
]
