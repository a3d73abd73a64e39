"""Losses L(A^[L], Y) and their hand-derived dL/dA^[L] (formulas §3, §4a).

A loss is a pair of pure functions over a batch of columns:

* ``forward(AL, Y) -> (m,)``: the loss of each example, summed over the n_L
  output units. The cost is its mean over the m examples (conventions §2).
* ``backward(AL, Y) -> dAL (n_L, m)``: the derivative of each example's loss
  with respect to its own column of A^[L]. It carries no 1/m: the 1/m
  enters once, in dW and db (§4c).

The fused, numerically stable output layers (sigmoid + BCE, softmax +
cross-entropy) are computed from Z^[L] and have dZ^[L] = A^[L] - Y; they live
in ``FUSED`` and are what ``jaxnn.cost`` and ``jaxnn.backward`` use whenever the
network's output pairing is one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Loss(NamedTuple):
    """A loss as two pure functions (formulas §3).

    Attributes:
      name: the name a ``Network`` refers to it by.
      forward: ``(AL (n_L, m), Y (n_L, m)) -> (m,)`` per-example losses.
      backward: ``(AL, Y) -> dAL (n_L, m)``, derivative of each example's loss.
      activations: output activations this loss is meaningful for (names), or
        None for any.
    """

    name: str
    forward: Callable[[Array, Array], Array]
    backward: Callable[[Array, Array], Array]
    activations: tuple[str, ...] | None = None


# --- binary cross-entropy (formulas §3a) -------------------------------------------------


def bce(AL: Array, Y: Array) -> Array:
    """Per-example BCE: -Σ_k [y log ŷ + (1 - y) log(1 - ŷ)] (formulas §3a).

    The direct formula, meaningful for AL in (0, 1). For a sigmoid output jaxnn
    uses ``bce_from_logits`` instead, which never takes log(0).

    Args:
      AL: the output A^[L] = ŷ, (n_L, m), entries in (0, 1).
      Y: the labels, (n_L, m).

    Returns:
      The loss of each example (column), shape (m,).
    """
    return -jnp.sum(Y * jnp.log(AL) + (1 - Y) * jnp.log1p(-AL), axis=0)


def bce_backward(AL: Array, Y: Array) -> Array:
    """dL/dŷ = -y/ŷ + (1 - y)/(1 - ŷ) = (ŷ - y) / (ŷ (1 - ŷ)) (formulas §3a, §4a).

    Args:
      AL: the output A^[L], (n_L, m).
      Y: the labels, (n_L, m).

    Returns:
      dAL: (n_L, m), the derivative of each example's loss with respect to its
      column of A^[L] (no 1/m).
    """
    return (AL - Y) / (AL * (1 - AL))


def bce_from_logits(ZL: Array, Y: Array) -> Array:
    """Per-example BCE of σ(ZL), computed from ZL: Σ_k [softplus(z) - y z].

    Equal to ``bce(sigmoid(ZL), Y)`` but finite for any |z| (float32 included):
    -log σ(z) = softplus(-z) and -log(1 - σ(z)) = softplus(z).

    Args:
      ZL: the output layer's pre-activation Z^[L], (n_L, m).
      Y: the labels, (n_L, m).

    Returns:
      The loss of each example (column), shape (m,).
    """
    return jnp.sum(jax.nn.softplus(ZL) - Y * ZL, axis=0)


def sigmoid_bce_dZ(ZL: Array, AL: Array, Y: Array) -> Array:
    """dZ^[L] = A^[L] - Y for a sigmoid output with BCE (formulas §4a, fused).

    Args:
      ZL: Z^[L], (n_L, m) (unused).
      AL: A^[L] = σ(Z^[L]), (n_L, m).
      Y: the labels, (n_L, m).

    Returns:
      dZ^[L]: (n_L, m), the derivative of each example's loss (no 1/m).
    """
    del ZL
    return AL - Y


# --- mean squared error (formulas §3b) ------------------------------------------------------


def mse(AL: Array, Y: Array) -> Array:
    """Per-example squared error Σ_k (y - ŷ)² (formulas §3b).

    The cost is its mean over examples, exactly formulas §3b (no 1/2).

    Args:
      AL: the output A^[L], (n_L, m).
      Y: the labels, (n_L, m).

    Returns:
      The loss of each example (column), shape (m,).
    """
    return jnp.sum((Y - AL) ** 2, axis=0)


def mse_backward(AL: Array, Y: Array) -> Array:
    """dL/dŷ = 2 (ŷ - y) (formulas §3b, §4a).

    Args:
      AL: the output A^[L], (n_L, m).
      Y: the labels, (n_L, m).

    Returns:
      dAL: (n_L, m), the derivative of each example's loss with respect to its
      column of A^[L] (no 1/m).
    """
    return 2 * (AL - Y)


# --- categorical cross-entropy -------------------------------------------------------------


def cross_entropy(AL: Array, Y: Array) -> Array:
    """Per-example categorical cross-entropy -Σ_k y_k log ŷ_k (formulas: categorical cross-entropy).

    For a softmax output jaxnn uses ``cross_entropy_from_logits``.

    Args:
      AL: the output A^[L] = ŷ, (n_L, m), columns of probabilities.
      Y: the labels, (n_L, m), one-hot (or probability) columns.

    Returns:
      The loss of each example (column), shape (m,).
    """
    return -jnp.sum(Y * jnp.log(AL), axis=0)


def cross_entropy_backward(AL: Array, Y: Array) -> Array:
    """dL/dŷ_k = -y_k / ŷ_k (formulas §4a).

    Args:
      AL: the output A^[L], (n_L, m).
      Y: the labels, (n_L, m).

    Returns:
      dAL: (n_L, m), the derivative of each example's loss with respect to its
      column of A^[L] (no 1/m).
    """
    return -Y / AL


def cross_entropy_from_logits(ZL: Array, Y: Array) -> Array:
    """Per-example -Σ_k y_k log softmax(ZL)_k, from ZL via log-sum-exp.

    ``jax.nn.log_softmax`` subtracts the column max, so this stays finite for
    |z| up to the float range.

    Args:
      ZL: the output layer's pre-activation Z^[L], (n_L, m).
      Y: the labels, (n_L, m).

    Returns:
      The loss of each example (column), shape (m,).
    """
    return -jnp.sum(Y * jax.nn.log_softmax(ZL, axis=0), axis=0)


def softmax_cross_entropy_dZ(ZL: Array, AL: Array, Y: Array) -> Array:
    """dZ^[L] = A^[L] Σ_k y_k - Y, which is A^[L] - Y for one-hot Y.

    From ∂/∂z_j [-Σ_k y_k (z_k - lse(z))] = softmax(z)_j Σ_k y_k - y_j. Written
    with Σ_k y_k so it stays the exact gradient for soft labels too (formulas §4a, fused).

    Args:
      ZL: Z^[L], (n_L, m) (unused).
      AL: A^[L] = softmax(Z^[L]), (n_L, m).
      Y: the labels, (n_L, m).

    Returns:
      dZ^[L]: (n_L, m), the derivative of each example's loss (no 1/m).
    """
    del ZL
    return AL * jnp.sum(Y, axis=0, keepdims=True) - Y


BCE = Loss("bce", bce, bce_backward, activations=("sigmoid",))
MSE = Loss("mse", mse, mse_backward, activations=None)
CROSS_ENTROPY = Loss("cross_entropy", cross_entropy, cross_entropy_backward, activations=("softmax",))

LOSSES: dict[str, Loss] = {loss.name: loss for loss in (BCE, MSE, CROSS_ENTROPY)}


class FusedOutput(NamedTuple):
    """A stable output layer computed from Z^[L] (conventions §2).

    Attributes:
      from_logits: ``(ZL, Y) -> (m,)`` per-example losses.
      dZ: ``(ZL, AL, Y) -> dZ^[L] (n_L, m)``.
    """

    from_logits: Callable[[Array, Array], Array]
    dZ: Callable[[Array, Array, Array], Array]


FUSED: dict[tuple[str, str], FusedOutput] = {
    ("sigmoid", "bce"): FusedOutput(bce_from_logits, sigmoid_bce_dZ),
    ("softmax", "cross_entropy"): FusedOutput(cross_entropy_from_logits, softmax_cross_entropy_dZ),
}


def make_loss(
    name: str,
    L: Callable[[Array, Array], Array],
    dL_dA: Callable[[Array, Array], Array],
    *,
    activations: tuple[str, ...] | None = None,
) -> Loss:
    """Build a loss from its per-example value and its derivative.

    Args:
      name: a label for reports (must not shadow a built-in loss).
      L: ``(AL (n_L, m), Y (n_L, m)) -> (m,)``, each example's loss summed over
        output units; the cost is its mean.
      dL_dA: ``(AL, Y) -> (n_L, m)``, the derivative of each example's loss with
        respect to its column of AL (no 1/m).
      activations: output activation names it may be paired with (None: any).

    Returns:
      A ``Loss``; use it in a ``Network`` in place of a name, and verify it with
      ``jaxnn.check_loss``.

    Raises:
      ValueError: for an empty name, the name of a built-in loss, or an L or
        dL_dA that is not callable.

    >>> import optax
    >>> huber = make_loss("huber",
    ...     lambda A, Y: jnp.sum(optax.huber_loss(A, Y), axis=0),
    ...     lambda A, Y: jnp.clip(A - Y, -1.0, 1.0))
    >>> huber.forward(jnp.full((1, 2), 3.0), jnp.zeros((1, 2)))  # |a - y| - 1/2 beyond 1
    Array([2.5, 2.5], dtype=float32)
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"make_loss: name must be a non-empty string, got {name!r}.")
    if name in LOSSES:
        raise ValueError(
            f"make_loss: {name!r} is a built-in loss; give your loss another name so "
            "reports are not ambiguous."
        )
    if not (callable(L) and callable(dL_dA)):
        raise ValueError("make_loss: L and dL_dA must both be callables (AL, Y) -> array.")
    return Loss(name, L, dL_dA, None if activations is None else tuple(activations))


def get_loss(loss: str | Loss) -> Loss:
    """Look a loss up by name, or pass a ``Loss`` through (formulas §3).

    Args:
      loss: a name from ``LOSSES`` (bce, mse, cross_entropy) or a ``Loss``.

    Returns:
      The ``Loss``: its ``forward`` maps AL: (n_L, m) and Y: (n_L, m) to the
      per-example losses (m,), its ``backward`` to dAL: (n_L, m).

    Raises:
      ValueError: for an unknown name, listing the valid ones.

    >>> loss = get_loss("mse")
    >>> loss.forward(jnp.ones((1, 4)), jnp.zeros((1, 4)))  # (y - ŷ)² per example
    Array([1., 1., 1., 1.], dtype=float32)
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    raise ValueError(
        f"Unknown loss {loss!r}. Valid names: {', '.join(LOSSES)}; "
        "or pass a Loss (see jaxnn.make_loss)."
    )
