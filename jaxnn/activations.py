"""Activation functions g and their hand-derived backward passes (formulas §1b, §2, §4).

An activation is a pair of pure functions, like a stax layer or an optax
transformation:

* ``forward(Z) -> A``: A^[l] = g(Z^[l]), Z and A of shape (n_l, m);
* ``backward(dA, Z, A) -> dZ``: the vector-Jacobian product dZ = dA · ∂A/∂Z.

``backward`` maps dA to dZ rather than returning g'(Z), because softmax is not
elementwise: its derivative is a Jacobian per column, and ``dA * g'(Z)`` is
wrong for it. For the elementwise activations ``backward`` is exactly the
the elementwise ``dA ⊙ g'(Z)`` (§4a-b). ``A = forward(Z)`` is passed in so sigmoid and
tanh reuse it instead of recomputing exp.

Forward passes call ``jax.nn`` (JAX already does them well and stably); every
backward is written by hand and tested against ``jax.jvp`` of the forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

LEAKY_RELU_SLOPE = 0.01


class Activation(NamedTuple):
    """An activation g as two pure functions (formulas §2).

    Attributes:
      name: the name a ``Network`` refers to it by.
      forward: ``Z (n_l, m) -> A (n_l, m)``, A = g(Z).
      backward: ``(dA, Z, A) -> dZ``, all (n_l, m): the vector-Jacobian product
        of g at Z applied to dA (for elementwise g, ``dA * g'(Z)``).
      elementwise: True when A_ij depends on Z_ij alone (False for softmax).
      kinks: points where g is not differentiable (0 for ReLU); gradient
        checks keep finite-difference steps away from them.
    """

    name: str
    forward: Callable[[Array], Array]
    backward: Callable[[Array, Array, Array], Array]
    elementwise: bool = True
    kinks: tuple[float, ...] = ()


# --- sigmoid: σ(z) = 1 / (1 + e^{-z}),  σ'(z) = σ(z)(1 - σ(z)) ------------------------


def sigmoid(Z: Array) -> Array:
    """σ(Z) = 1 / (1 + exp(-Z)), elementwise; range (0, 1) (formulas §2).

    >>> sigmoid(jnp.zeros((1, 1)))
    Array([[0.5]], dtype=float32)
    """
    return jax.nn.sigmoid(Z)


def sigmoid_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA ⊙ A ⊙ (1 - A), using σ'(z) = σ(z)(1 - σ(z)). Shapes (n_l, m)."""
    del Z
    return dA * A * (1 - A)


# --- tanh: tanh'(z) = 1 - tanh(z)^2 ----------------------------------------------


def tanh(Z: Array) -> Array:
    """tanh(Z), elementwise; range (-1, 1) (formulas §2)."""
    return jnp.tanh(Z)


def tanh_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA ⊙ (1 - A²), using tanh'(z) = 1 - tanh(z)². Shapes (n_l, m).

    Evaluated as (1 - A)(1 + A): when |A| is near 1, 1 - A is exact while
    1 - A² would lose most of its digits to cancellation.
    """
    del Z
    return dA * ((1 - A) * (1 + A))


# --- relu: max(0, z); derivative 1 for z > 0, 0 for z <= 0 ------------------------


def relu(Z: Array) -> Array:
    """ReLU(Z) = max(0, Z), elementwise; range [0, ∞) (formulas §2)."""
    return jax.nn.relu(Z)


def relu_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA ⊙ 1[Z > 0]. Shapes (n_l, m).

    At the kink Z = 0 the derivative is taken as 0, the same convention as
    ``jax.nn.relu`` (so manual and autodiff gradients agree exactly there).
    """
    del A
    return jnp.where(Z > 0, dA, jnp.zeros_like(dA))


# --- leaky relu: z for z >= 0, slope * z otherwise --------------------------------


def leaky_relu(Z: Array) -> Array:
    """Leaky ReLU with negative slope 0.01: Z for Z >= 0, 0.01 Z otherwise."""
    return jax.nn.leaky_relu(Z, negative_slope=LEAKY_RELU_SLOPE)


def leaky_relu_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA for Z >= 0, 0.01 dA otherwise. Shapes (n_l, m).

    At Z = 0 the derivative is 1, matching ``jax.nn.leaky_relu``'s ``Z >= 0``
    branch.
    """
    del A
    return jnp.where(Z >= 0, dA, LEAKY_RELU_SLOPE * dA)


# --- identity: regression outputs --------------------------------------------------


def identity(Z: Array) -> Array:
    """A = Z: the output activation for regression."""
    return Z


def identity_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA."""
    del Z, A
    return dA


# --- softmax: a Jacobian per column, not an elementwise derivative ---------------


def softmax(Z: Array) -> Array:
    """softmax over each column: A_k = exp(Z_k) / Σ_j exp(Z_j) (formulas §2).

    Normalised over axis 0 (the n_L output units), since examples are columns.
    Stable for large |Z| (max subtraction inside ``jax.nn.softmax``).
    """
    return jax.nn.softmax(Z, axis=0)


def softmax_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = A ⊙ (dA - Σ_k dA_k A_k), column by column. Shapes (n_L, m).

    The Jacobian of softmax is ∂A_k/∂Z_j = A_k (δ_kj - A_j), so
    dZ_j = Σ_k dA_k A_k (δ_kj - A_j) = A_j (dA_j - Σ_k dA_k A_k). This is what
    makes softmax correct with any loss (MSE too), not only cross-entropy.
    """
    del Z
    return A * (dA - jnp.sum(dA * A, axis=0, keepdims=True))


SIGMOID = Activation("sigmoid", sigmoid, sigmoid_backward)
TANH = Activation("tanh", tanh, tanh_backward)
RELU = Activation("relu", relu, relu_backward, kinks=(0.0,))
LEAKY_RELU = Activation("leaky_relu", leaky_relu, leaky_relu_backward, kinks=(0.0,))
IDENTITY = Activation("identity", identity, identity_backward)
SOFTMAX = Activation("softmax", softmax, softmax_backward, elementwise=False)

ACTIVATIONS: dict[str, Activation] = {
    a.name: a for a in (SIGMOID, TANH, RELU, LEAKY_RELU, IDENTITY, SOFTMAX)
}


def make_activation(
    name: str,
    g: Callable[[Array], Array],
    g_prime: Callable[[Array], Array],
    *,
    kinks: tuple[float, ...] = (),
) -> Activation:
    """Build an elementwise activation from g and its derivative g'.

    Args:
      name: a label for reports and error messages (must not shadow a built-in).
      g: ``Z -> A``, elementwise.
      g_prime: ``Z -> g'(Z)``, elementwise, same shape as Z.
      kinks: points where g is not differentiable.

    Returns:
      An ``Activation`` whose backward is ``dA * g'(Z)`` (formulas §4a). Use it in a
      ``Network`` in place of a name, and verify it with ``jaxnn.check_activation``.

    >>> swish = make_activation("swish", lambda z: z * jax.nn.sigmoid(z),
    ...     lambda z: jax.nn.sigmoid(z) * (1 + z * (1 - jax.nn.sigmoid(z))))
    >>> swish.name
    'swish'
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"make_activation: name must be a non-empty string, got {name!r}.")
    if name in ACTIVATIONS:
        raise ValueError(
            f"make_activation: {name!r} is a built-in activation; give your activation "
            "another name so reports are not ambiguous."
        )
    if not (callable(g) and callable(g_prime)):
        raise ValueError("make_activation: g and g_prime must both be callables Z -> array.")

    def backward(dA: Array, Z: Array, A: Array) -> Array:
        del A
        return dA * g_prime(Z)

    return Activation(name, g, backward, elementwise=True, kinks=tuple(kinks))


def get_activation(activation: str | Activation) -> Activation:
    """Look an activation up by name, or pass an ``Activation`` through (formulas §2).

    The ``Activation`` returned maps Z: (n_l, m) to A = g(Z): (n_l, m) with
    ``forward``, and dA: (n_l, m) to dZ: (n_l, m) with ``backward(dA, Z, A)``.

    Raises:
      ValueError: for an unknown name, listing the valid ones.

    >>> g = get_activation("tanh")
    >>> g.name, g.elementwise
    ('tanh', True)
    >>> g.forward(jnp.zeros((3, 4))).shape
    (3, 4)
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    raise ValueError(
        f"Unknown activation {activation!r}. Valid names: {', '.join(ACTIVATIONS)}; "
        "or pass an Activation (see jaxnn.make_activation)."
    )
