"""``Network``: the immutable description of a fully connected network (formulas §1).

A ``Network`` holds no arrays. It is registered as a pytree with no leaves, so
it passes straight through ``jax.jit``, ``jax.grad`` and ``jax.vmap`` as an
ordinary argument (it becomes part of the compilation key, like a static
argument, without ``static_argnums``).

This module also holds the trace-time checks of params, X and Y against a
Network: shapes are static under ``jit``, so the checks cost nothing at run
time, and a bad shape raises a ``ValueError`` naming the layer and the shapes
instead of surfacing as a broadcasting error deep inside XLA.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.core.activations import Activation, get_activation
from jaxnn.core.losses import FUSED, Loss, get_loss
from jaxnn.core.validate_data import as_array, check_real


@dataclasses.dataclass(frozen=True)
class Network:
    """A fully connected network: sizes, activations and loss (formulas §1-§3).

    Args:
      layer_sizes: ``(n_x, n_1, ..., n_L)``: input size then the size of each
        of the L layers. All positive integers, at least two entries.
      activations: L activations, one per layer 1..L: names from
        ``jaxnn.ACTIVATIONS`` (sigmoid, tanh, relu, leaky_relu, identity,
        softmax) or ``Activation`` objects (``jaxnn.make_activation``).
      loss: ``"bce"``, ``"mse"``, ``"cross_entropy"`` or a ``Loss``.

    Allowed output pairings: bce needs a sigmoid output, cross_entropy a
    softmax output; mse works with any output activation.

    >>> net = Network((4, 8, 3), ("relu", "softmax"), "cross_entropy")
    >>> net.L, net.n_x, net.n_L
    (2, 4, 3)
    """

    layer_sizes: tuple[int, ...]
    activations: tuple[str | Activation, ...]
    loss: str | Loss = "mse"

    def __post_init__(self) -> None:
        sizes = _as_tuple(self.layer_sizes, "layer_sizes")
        if len(sizes) < 2:
            raise ValueError(
                f"layer_sizes must be (n_x, n_1, ..., n_L) with at least one layer, got {sizes}."
            )
        for i, n in enumerate(sizes):
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
                what = "n_x (the input size)" if i == 0 else f"n_{i} (layer {i})"
                raise ValueError(
                    f"layer_sizes[{i}] = {n!r} is {what}; every size must be a positive integer."
                )
        sizes = tuple(int(n) for n in sizes)
        acts = self.activations
        if isinstance(acts, (str, Activation)):
            raise ValueError(
                f"activations must be a sequence of {len(sizes) - 1} activations (one per layer), "
                f"got the single value {acts!r}; e.g. activations=({acts!r},)."
            )
        acts = _as_tuple(acts, "activations")
        if len(acts) != len(sizes) - 1:
            raise ValueError(
                f"len(activations) = {len(acts)} but layer_sizes {sizes} describes "
                f"{len(sizes) - 1} layers: give one activation per layer 1..L."
            )
        for l, a in enumerate(acts, start=1):
            try:
                get_activation(a)
            except ValueError as e:
                raise ValueError(f"layer {l}: {e}") from None
        loss = get_loss(self.loss)
        out = get_activation(acts[-1])
        if loss.activations is not None and out.name not in loss.activations:
            raise ValueError(
                f"loss {loss.name!r} does not fit the output activation {out.name!r} of layer "
                f"{len(acts)}: {loss.name!r} needs {' or '.join(loss.activations)} outputs. "
                "Allowed pairings: bce with sigmoid (outputs in (0, 1)), cross_entropy with "
                "softmax (columns are distributions), mse with any output activation."
            )
        object.__setattr__(self, "layer_sizes", sizes)
        object.__setattr__(self, "activations", acts)

    @property
    def L(self) -> int:
        """Number of layers L (weight matrices), numbered 1..L as in formulas §1."""
        return len(self.layer_sizes) - 1

    @property
    def n_x(self) -> int:
        """Input size n_x = n^[0]."""
        return self.layer_sizes[0]

    @property
    def n_L(self) -> int:
        """Output size n^[L]."""
        return self.layer_sizes[-1]

    @property
    def layer_activations(self) -> tuple[Activation, ...]:
        """The L ``Activation`` objects, layer 1 first."""
        return tuple(get_activation(a) for a in self.activations)

    @property
    def loss_fn(self) -> Loss:
        """The ``Loss`` object."""
        return get_loss(self.loss)

    @property
    def fused(self) -> bool:
        """True when the output is sigmoid+BCE or softmax+cross-entropy (dZ^[L] = A^[L] - Y)."""
        return (self.layer_activations[-1].name, self.loss_fn.name) in FUSED

    def param_shapes(self) -> list[dict[str, tuple[int, int]]]:
        """``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}, ...]`` for l = 1..L."""
        s = self.layer_sizes
        return [{"W": (s[l], s[l - 1]), "b": (s[l], 1)} for l in range(1, len(s))]

    def describe(self) -> dict:
        """A JSON-friendly description (names only), e.g. for checkpoints."""
        return {
            "layer_sizes": list(self.layer_sizes),
            "activations": [get_activation(a).name for a in self.activations],
            "loss": self.loss_fn.name,
        }


def _as_tuple(value, what: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        try:
            return tuple(value)
        except TypeError:
            raise ValueError(f"{what} must be a sequence, got {value!r}.") from None
    return tuple(value)


# Networks carry no arrays: a pytree with no children whose aux data is the
# (hashable) Network itself, so jit caches one compilation per architecture.
jax.tree_util.register_pytree_node(
    Network,
    lambda net: ((), net),
    lambda net, _: net,
)


# --- trace-time checks -----------------------------------------------------------------------


def check_params(params, net: Network) -> None:
    """Raise ``ValueError`` unless params is ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}] * L``.

    Args:
      params: the params pytree to check, one dict per layer 1..L.
      net: the ``Network`` it must fit.

    Raises:
      ValueError: naming the layer, the leaf, the expected and the actual shape
        (or dtype), with a hint when W looks transposed.
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a jaxnn.Network, got {type(net).__name__}.")
    if not isinstance(params, (list, tuple)):
        raise ValueError(
            f"params must be a list with one {{'W', 'b'}} dict per layer, got "
            f"{type(params).__name__}; build it with jaxnn.init_params(key, net)."
        )
    if len(params) != net.L:
        raise ValueError(
            f"params has {len(params)} layers but the Network has L = {net.L} "
            f"(layer_sizes {net.layer_sizes})."
        )
    for l, (p, expected) in enumerate(zip(params, net.param_shapes()), start=1):
        if not isinstance(p, dict) or set(p) != {"W", "b"}:
            keys = sorted(p) if isinstance(p, dict) else type(p).__name__
            raise ValueError(
                f"layer {l}: params[{l - 1}] must be a dict with keys 'W' and 'b', got {keys}."
            )
        for name in ("W", "b"):
            shape = tuple(np.shape(p[name]))
            if shape != expected[name]:
                hint = ""
                if name == "b" and shape == (expected["b"][0],):
                    hint = " A bias must be a column (n_l, 1) so it broadcasts over the m columns."
                elif name == "W" and shape == expected["W"][::-1]:
                    hint = " W looks transposed: the W^[l] is (n_l, n_{l-1})."
                raise ValueError(
                    f"layer {l}: {name} has shape {shape}, expected {expected[name]} for "
                    f"layer_sizes {net.layer_sizes}.{hint}"
                )
            dtype = getattr(p[name], "dtype", None)
            if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
                raise ValueError(
                    f"layer {l}: {name} has dtype {dtype}; params must be floating-point arrays."
                )


def check_X(X, net: Network) -> None:
    """Raise ``ValueError`` unless X is (n_x, m), one column per example (formulas §1).

    Args:
      X: the inputs to check.
      net: the ``Network`` (its n_x).

    Raises:
      ValueError: for a ragged nested list, or one of traced values (a list passed
        into a compiled function: convert it outside), a dtype that is not real
        numbers (``validate_data.check_real``), or a shape other than
        (n_x, m) with m >= 1, saying when X looks like (m, n_x), one row per example.
    """
    shape = _checked_shape("X", X)
    if len(shape) != 2:
        raise ValueError(
            f"X must be 2-D (n_x, m) = ({net.n_x}, m), one column per example; got shape {shape}."
            + (" For a single example use X[:, None]." if len(shape) == 1 else "")
        )
    if shape[0] != net.n_x:
        msg = f"X has shape {shape} but the Network expects (n_x, m) with n_x = {net.n_x}."
        if shape[1] == net.n_x:
            msg += (
                " It looks like (m, n_x), one ROW per example (the row-major habit): jaxnn "
                "uses the layout, one COLUMN per example; pass X.T."
            )
        raise ValueError(msg)
    if shape[1] == 0:
        raise ValueError("X has m = 0 examples; the cost is a mean over m and needs m >= 1.")


def check_Y(Y, X, net: Network) -> None:
    """Raise ``ValueError`` unless Y is (n_L, m) with the m of X (formulas §3).

    Args:
      Y: the labels to check.
      X: the inputs, (n_x, m), whose m Y must have.
      net: the ``Network`` (its n_L).

    Raises:
      ValueError: first any problem of X (``check_X``: Y's expected shape is read
        off X), then a list or non-real Y, then another shape, with the fix for
        transposed labels, a row of labels, or integer class labels that need
        one-hot columns.
    """
    check_X(X, net)
    shape = _checked_shape("Y", Y)
    m = np.shape(X)[1]
    expected = (net.n_L, m)
    if shape == expected:
        return
    msg = f"Y has shape {shape}, expected (n_L, m) = {expected}."
    if shape == (m, net.n_L):
        msg += " It looks like (m, n_L), one row per example: pass Y.T."
    elif shape == (m,) and net.n_L == 1:
        msg += " Pass Y[None, :] (labels as a row)."
    elif shape in ((m,), (1, m)) and net.n_L > 1:
        msg += (f" Integer class labels must be one-hot columns: Y = jax.nn.one_hot(y, {net.n_L}).T"
                f" for labels y of shape (m,) with values 0..{net.n_L - 1}.")
    raise ValueError(msg)


def _checked_shape(name: str, a) -> tuple[int, ...]:
    """The shape of X or Y, once its values are known to be real numbers (``check_real``)."""
    if isinstance(a, (list, tuple)):
        if any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(a)):
            # under jit a nested list arrives as a list of scalar tracers: convert it outside
            raise ValueError(f"{name} is a Python {type(a).__name__}; pass an array: "
                             f"{name} = jnp.asarray({name}, jnp.float32), (n, m) with one column "
                             "per example (convert it before calling a jitted function).")
        a = as_array(name, a)  # a concrete nested list: ragged rows and non-numbers refused
    check_real(name, a)
    return tuple(np.shape(a))


def check_problem(params, X, Y, net: Network, who: str) -> None:
    """``check_params``, ``check_X`` and ``check_Y`` at once; the ValueError starts with ``who``.

    For entry points other than ``forward`` that take a whole problem (checks,
    per-example gradients), so their errors name the function the user called.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``.
      X: (n_x, m).
      Y: (n_L, m).
      net: the ``Network``.
      who: the name of the calling function, put at the start of the message.

    Raises:
      ValueError: the first of the three checks that fails.
    """
    try:
        check_params(params, net)
        check_X(X, net)
        check_Y(Y, X, net)
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None
