"""Metrics: cost and accuracy (classifiers) or R² and RMSE (regression), full or running.

``evaluate`` scores params on a whole data set after training (no dropout,
no L2). During an epoch the training forward passes already compute A^[L]
and each example's loss, so the epoch program accumulates the same metrics
from them at no extra cost (``batch_sums`` per batch, ``finish_sums`` at the
end of the epoch): RUNNING averages over the epoch, taken while the params
change and with dropout on, as most training loops report them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnn.core.forward import cost_from_cache, forward, per_example_loss
from jaxnn.core.network import Network

Array = jax.Array


def is_classifier(net: Network) -> bool:
    """Softmax output, or sigmoid + BCE: scored by accuracy; anything else by R² and RMSE.

    Args:
      net: the ``Network``.

    >>> is_classifier(Network((2, 3, 1), ("tanh", "sigmoid"), "bce"))
    True
    """
    out = net.layer_activations[-1].name
    return out == "softmax" or (out == "sigmoid" and net.loss_fn.name == "bce")


def metric_names(net: Network) -> tuple[str, ...]:
    """The metrics ``evaluate`` reports for ``net`` besides the cost.

    ``("accuracy",)`` for a classifier (softmax output, or sigmoid + BCE, where
    Y: (n_L, m) holds one-hot or 0/1 columns); ``("r2", "rmse")`` otherwise.

    Args:
      net: the ``Network``.

    >>> metric_names(Network((2, 3, 1), ("tanh", "sigmoid"), "bce"))
    ('accuracy',)
    >>> metric_names(Network((2, 3, 1), ("tanh", "identity"), "mse"))
    ('r2', 'rmse')
    """
    return ("accuracy",) if is_classifier(net) else ("r2", "rmse")


def _hits(AL: Array, Y: Array, net: Network) -> Array:
    """Correct predictions per entry scored: (m,) for softmax, (n_L, m) for sigmoid units."""
    if net.layer_activations[-1].name == "softmax":
        return (jnp.argmax(AL, axis=0) == jnp.argmax(Y, axis=0)).astype(AL.dtype)
    return ((AL > 0.5) == (Y > 0.5)).astype(AL.dtype)


def evaluate(params: list[dict], X: Array, Y: Array, net: Network) -> dict[str, Array]:
    """Cost and metrics on a whole data set, without dropout or L2 (formulas §1, §3).

    Returns ``{"cost", "accuracy"}`` for classifiers (argmax of softmax columns;
    sigmoid outputs thresholded at 0.5, per unit) or ``{"cost", "r2", "rmse"}``
    (R² = 1 - SS_res/SS_tot per output unit, averaged; RMSE in Y's units).

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m).
      Y: (n_L, m).
      net: the ``Network``.

    Returns:
      name -> scalar ().

    With all weights and biases 0, A^[L] = σ(0) = 1/2 and the BCE is log 2:

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jax.tree.map(jnp.zeros_like, jaxnn.init_params(jax.random.key(0), net))
    >>> out = evaluate(params, jnp.ones((2, 4)), jnp.ones((1, 4)), net)
    >>> sorted(out), round(float(out["cost"]), 4)
    (['accuracy', 'cost'], 0.6931)
    """
    AL, cache = forward(params, X, net)
    out = {"cost": cost_from_cache(params, cache, Y, net)}
    if is_classifier(net):
        out["accuracy"] = jnp.mean(_hits(AL, Y, net))
    else:
        sq = (Y - AL) ** 2
        ss_tot = jnp.sum((Y - jnp.mean(Y, axis=1, keepdims=True)) ** 2, axis=1)
        out["r2"] = jnp.mean(1 - jnp.sum(sq, axis=1) / ss_tot)
        out["rmse"] = jnp.sqrt(jnp.mean(sq))
    return out


def batch_sums(cache: list[dict], Y: Array, net: Network, w: Array | None = None) -> dict[str, Array]:
    """One batch's contribution to the running metrics: sums over its (weighted) columns.

    Args:
      cache: the training forward pass's cache (``forward``), A^[L]: (n_L, b).
      Y: (n_L, b).
      net: the ``Network``.
      w: None, or (b,) weights (0 for padding columns).

    Returns:
      ``{"loss": Σ L^(i), "hits": Σ correct}`` for classifiers or
      ``{"loss", "sq": Σ_i (y - a)² per unit, (n_L,)}``, all weighted by w.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> sums = batch_sums(forward(params, jnp.ones((2, 4)), net)[1], jnp.ones((1, 4)), net)
    >>> sorted(sums)
    ['hits', 'loss']
    """
    AL = cache[-1]["A"]
    loss = per_example_loss(cache, Y, net)
    if w is None:  # the common case: plain sums, nothing to weigh
        out = {"loss": jnp.sum(loss)}
        if is_classifier(net):
            out["hits"] = jnp.sum(_hits(AL, Y, net))
        else:
            out["sq"] = jnp.sum((Y - AL) ** 2, axis=1)
        return out
    w = w.astype(AL.dtype)
    out = {"loss": jnp.sum(jnp.where(w > 0, w * loss, 0))}
    if is_classifier(net):
        hits = _hits(AL, Y, net)
        out["hits"] = jnp.sum(hits * (w if hits.ndim == 1 else w[None, :]))
    else:
        out["sq"] = jnp.sum((Y - AL) ** 2 * w[None, :], axis=1)
    return out


def zero_sums(net: Network, dtype) -> dict[str, Array]:
    """Zeros with the structure of ``batch_sums`` for ``net``: where an epoch starts adding.

    Args:
      net: the ``Network``.
      dtype: the floating dtype of the sums.

    >>> zero_sums(Network((2, 3, 1), ("tanh", "identity"), "mse"), jnp.float32)["sq"].shape
    (1,)
    """
    out = {"loss": jnp.zeros((), dtype)}
    if is_classifier(net):
        out["hits"] = jnp.zeros((), dtype)
    else:
        out["sq"] = jnp.zeros((net.n_L,), dtype)
    return out


def finish_sums(sums: dict[str, Array], Y: Array, net: Network) -> dict[str, Array]:
    """Running metrics of an epoch from the accumulated ``batch_sums`` over all m columns.

    Args:
      sums: ``batch_sums`` added over the epoch's batches.
      Y: (n_L, m), the whole training targets (for R²'s SS_tot and the counts).
      net: the ``Network``.

    Returns:
      ``{"train_cost", "train_accuracy"}`` or ``{"train_cost", "train_r2", "train_rmse"}``.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> out = finish_sums({"loss": jnp.array(2.0), "hits": jnp.array(3.0)}, jnp.ones((1, 4)), net)
    >>> {k: float(v) for k, v in out.items()}
    {'train_cost': 0.5, 'train_accuracy': 0.75}
    """
    n_L, m = Y.shape
    out = {"train_cost": sums["loss"] / m}
    if "hits" in sums:
        per_column = net.layer_activations[-1].name == "softmax"
        out["train_accuracy"] = sums["hits"] / (m if per_column else m * n_L)
    else:
        ss_tot = jnp.sum((Y - jnp.mean(Y, axis=1, keepdims=True)) ** 2, axis=1)
        out["train_r2"] = jnp.mean(1 - sums["sq"] / ss_tot)
        out["train_rmse"] = jnp.sqrt(jnp.sum(sums["sq"]) / (m * n_L))
    return out
