"""Activation functions g and their hand-derived backward passes (formulas §1b, §2, §4).

An activation is a pair of pure functions, like a stax layer or an optax
transformation:

* ``forward(Z) -> A``: A^[l] = g(Z^[l]), Z and A of shape (n_l, m);
* ``backward(dA, Z, A) -> dZ``: the vector-Jacobian product dZ = dA · ∂A/∂Z.

``backward`` maps dA to dZ rather than returning g'(Z), because softmax is not
elementwise: its derivative is a Jacobian per column, and ``dA * g'(Z)`` is
wrong for it. For the elementwise activations ``backward`` is exactly
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

    Args:
      Z: the pre-activation Z^[l], (n_l, m).

    Returns:
      A = σ(Z), (n_l, m).

    >>> sigmoid(jnp.zeros((1, 1)))
    Array([[0.5]], dtype=float32)
    """
    return jax.nn.sigmoid(Z)


def sigmoid_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA ⊙ A ⊙ (1 - A), using σ'(z) = σ(z)(1 - σ(z)) (formulas §2, §4b).

    Args:
      dA: the gradient with respect to A^[l], (n_l, m).
      Z: the pre-activation Z^[l], (n_l, m) (unused).
      A: σ(Z), the forward pass's output, (n_l, m).

    Returns:
      dZ: the gradient with respect to Z^[l], (n_l, m).
    """
    del Z
    return dA * A * (1 - A)


# --- tanh: tanh'(z) = 1 - tanh(z)^2 ----------------------------------------------


def tanh(Z: Array) -> Array:
    """tanh(Z), elementwise; range (-1, 1) (formulas §2).

    Args:
      Z: the pre-activation Z^[l], (n_l, m).

    Returns:
      A = tanh(Z), (n_l, m).
    """
    return jnp.tanh(Z)


def tanh_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA ⊙ (1 - A²), using tanh'(z) = 1 - tanh(z)² (formulas §2, §4b).

    Evaluated as (1 - A)(1 + A): when |A| is near 1, 1 - A is exact while
    1 - A² would lose most of its digits to cancellation.

    Args:
      dA: the gradient with respect to A^[l], (n_l, m).
      Z: the pre-activation Z^[l], (n_l, m) (unused).
      A: tanh(Z), the forward pass's output, (n_l, m).

    Returns:
      dZ: the gradient with respect to Z^[l], (n_l, m).
    """
    del Z
    return dA * ((1 - A) * (1 + A))


# --- relu: max(0, z); derivative 1 for z > 0, 0 for z <= 0 ------------------------


def relu(Z: Array) -> Array:
    """ReLU(Z) = max(0, Z), elementwise; range [0, ∞) (formulas §2).

    Args:
      Z: the pre-activation Z^[l], (n_l, m).

    Returns:
      A = max(0, Z), (n_l, m).
    """
    return jax.nn.relu(Z)


def relu_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA ⊙ 1[Z > 0] (formulas §2, §4b).

    At the kink Z = 0 the derivative is taken as 0, the same convention as
    ``jax.nn.relu`` (so manual and autodiff gradients agree exactly there).

    Args:
      dA: the gradient with respect to A^[l], (n_l, m).
      Z: the pre-activation Z^[l], (n_l, m).
      A: ReLU(Z), (n_l, m) (unused).

    Returns:
      dZ: the gradient with respect to Z^[l], (n_l, m).
    """
    del A
    return jnp.where(Z > 0, dA, jnp.zeros_like(dA))


# --- leaky relu: z for z >= 0, slope * z otherwise --------------------------------


def leaky_relu(Z: Array) -> Array:
    """Leaky ReLU with negative slope 0.01: Z for Z >= 0, 0.01 Z otherwise.

    Args:
      Z: the pre-activation Z^[l], (n_l, m).

    Returns:
      A = leaky_relu(Z), (n_l, m).
    """
    return jax.nn.leaky_relu(Z, negative_slope=LEAKY_RELU_SLOPE)


def leaky_relu_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA for Z >= 0, 0.01 dA otherwise (formulas §4b).

    At Z = 0 the derivative is 1, matching ``jax.nn.leaky_relu``'s ``Z >= 0``
    branch.

    Args:
      dA: the gradient with respect to A^[l], (n_l, m).
      Z: the pre-activation Z^[l], (n_l, m).
      A: leaky_relu(Z), (n_l, m) (unused).

    Returns:
      dZ: the gradient with respect to Z^[l], (n_l, m).
    """
    del A
    return jnp.where(Z >= 0, dA, LEAKY_RELU_SLOPE * dA)


# --- identity: regression outputs --------------------------------------------------


def identity(Z: Array) -> Array:
    """A = Z: the output activation for regression.

    Args:
      Z: the pre-activation Z^[l], (n_l, m).

    Returns:
      Z itself, unchanged, (n_l, m).
    """
    return Z


def identity_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = dA (formulas §4b).

    Args:
      dA: the gradient with respect to A^[l], (n_l, m).
      Z: the pre-activation Z^[l], (n_l, m) (unused).
      A: Z itself, (n_l, m) (unused).

    Returns:
      dZ: the gradient with respect to Z^[l], (n_l, m).
    """
    del Z, A
    return dA


# --- softmax: a Jacobian per column, not an elementwise derivative ---------------


def softmax(Z: Array) -> Array:
    """softmax over each column: A_k = exp(Z_k) / Σ_j exp(Z_j) (formulas §2).

    Normalised over axis 0 (the n_L output units), since examples are columns.
    Stable for large |Z| (max subtraction inside ``jax.nn.softmax``).

    Args:
      Z: the pre-activation Z^[L], (n_L, m).

    Returns:
      A: (n_L, m); each column is a probability distribution.
    """
    return jax.nn.softmax(Z, axis=0)


def softmax_backward(dA: Array, Z: Array, A: Array) -> Array:
    """dZ = A ⊙ (dA - Σ_k dA_k A_k), column by column (softmax's Jacobian-vector product).

    The Jacobian of softmax is ∂A_k/∂Z_j = A_k (δ_kj - A_j), so
    dZ_j = Σ_k dA_k A_k (δ_kj - A_j) = A_j (dA_j - Σ_k dA_k A_k). This is what
    makes softmax correct with any loss (MSE too), not only cross-entropy.

    Args:
      dA: the gradient with respect to A^[L], (n_L, m).
      Z: the pre-activation Z^[L], (n_L, m) (unused).
      A: softmax(Z), the forward pass's output, (n_L, m).

    Returns:
      dZ: the gradient with respect to Z^[L], (n_L, m).
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
      kinks: points where g is not differentiable (gradient checks keep
        finite-difference steps away from them).

    Returns:
      An ``Activation`` whose backward is ``dA * g'(Z)`` (formulas §4a). Use it in a
      ``Network`` in place of a name, and verify it with ``jaxnn.check_activation``.

    Raises:
      ValueError: for an empty name, the name of a built-in activation, or a g
        or g_prime that is not callable.

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

    Args:
      activation: a name from ``ACTIVATIONS`` (sigmoid, tanh, relu, leaky_relu,
        identity, softmax) or an ``Activation``.

    Returns:
      The ``Activation``: its ``forward`` maps Z: (n_l, m) to A = g(Z): (n_l, m),
      its ``backward(dA, Z, A)`` maps dA: (n_l, m) to dZ: (n_l, m).

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
