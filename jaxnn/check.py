"""Gradient checking: is a hand-derived backward pass right? (formulas §4; conventions §3).

``check_gradients`` compares the hand-derived gradient (``value_and_manual_grad``)
with up to three references and says where they disagree:

* ``"autodiff"``: ``jax.grad`` of ``jaxnn.cost``, in the caller's dtype
  (threshold 1e-5 for float32, 1e-10 for float64);
* ``"finite_difference"``: central differences (J(θ + εe) - J(θ - εe)) / 2ε in
  float64 (params, X and Y are upcast copies), threshold 1e-6. Every entry of
  a leaf is perturbed in one batched (``jax.vmap``) evaluation; leaves larger
  than ``max_entries`` use random unit directions v instead, comparing
  <g, v> with the difference quotient along v;
* ``"jvp"``: forward mode, ``jax.jvp`` of the cost along random unit
  directions in each leaf, against <g, v>, in float64, threshold 1e-10.

Every error is the normwise relative error ||g1 - g2|| / max(||g1|| + ||g2||,
1e-30) of conventions §3, over the whole gradient, each layer, and each leaf.

Kinks (ReLU, leaky ReLU at 0, any ``Activation.kinks``): a finite difference
across a kink measures neither one-sided derivative. Each perturbed forward
pass is compared with the unperturbed one, and a coordinate (or direction) is
excluded when some pre-activation Z lies closer to a kink than ``kink_margin``
times the distance the ±ε step moved it; the report counts the exclusions.
So a kink never causes a false alarm.

``check_activation`` and ``check_loss`` verify a single activation's or loss's
hand-written derivative against ``jax.vjp`` / ``jax.grad`` over a range of
inputs (large |z| included), and ``run_sweep`` runs ``check_gradients`` over
every built-in activation x loss pairing x depth (``jaxnn gradcheck``).

Everything runs eagerly (op by op): a compiled program per network would cost
more to compile than a check costs to run, and eager primitives are cached by
shape, so a sweep over many small networks reuses them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.activations import ACTIVATIONS, Activation, get_activation
from jaxnn.backward import value_and_autodiff_grad, value_and_manual_grad
from jaxnn.forward import cost, cost_from_cache, forward
from jaxnn.losses import LOSSES, Loss, get_loss
from jaxnn.network import Network, check_problem

Array = jax.Array

TINY = 1e-30
METHODS = ("autodiff", "finite_difference", "jvp")
DEFAULT_METHODS = ("autodiff", "finite_difference")
# conventions §3 for float32/float64. Half precision is not covered there:
# about ten units of the format's epsilon.
AUTODIFF_THRESHOLDS = {"float64": 1e-10, "float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-1}
FD_THRESHOLD = 1e-6
JVP_THRESHOLD = 1e-10
PARAM_NAMES = ("W", "b")


def _full_precision_matmuls(fn):
    """Run ``fn`` with float32 matmuls in full float32 precision.

    TPUs (bf16 passes) and recent GPUs (TF32) multiply float32 matrices in lower
    precision by default; that rounding (~1e-3) would fail the 1e-5 autodiff
    threshold on a correct derivation. A check tests the derivation, not the
    hardware's matmul mode. On CPU this is already the default.
    """
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapped


class GradientCheckError(AssertionError):
    """Raised by ``raise_if_failed``; the message is the report's table."""


# --- reports -------------------------------------------------------------------------------


class Entry(NamedTuple):
    """One compared number: an entry of W^[l] or b^[l], or one random direction v_k.

    ``manual`` is the hand-derived value, ``reference`` the method's (autodiff,
    finite difference or jvp). For a direction both are directional derivatives
    <g, v_k>.
    """

    layer: int
    param: str
    index: tuple[int, ...]
    manual: float
    reference: float
    kind: str = "entry"

    @property
    def abs_error(self) -> float:
        return abs(self.manual - self.reference)

    def where(self) -> str:
        if self.kind == "direction":
            return f"{self.param}^[{self.layer}]·v{self.index[0]}"
        return f"{self.param}^[{self.layer}][{', '.join(str(i) for i in self.index)}]"


class MethodResult(NamedTuple):
    """The comparison of the manual gradient with one reference method.

    Attributes:
      method: ``"autodiff"``, ``"finite_difference"`` or ``"jvp"``.
      dtype: the dtype both sides were computed in.
      error: normwise relative error over the whole gradient (conventions §3);
        nan when a side is not finite or nothing was compared.
      threshold: the pass/fail threshold used.
      status: ``"pass"``, ``"FAIL"`` or ``"skipped"`` (nothing left to compare).
      strategy: how the reference was computed.
      param_errors: ``((l, "W", err), (l, "b", err), ...)`` for l = 1..L.
      layer_errors: error of each layer's (W, b) together, layer 1 first.
      worst_layer: when failed, the highest layer whose error exceeds the
        threshold. A wrong derivative in layer l corrupts dZ^[l] and, through
        the recursion dZ^[l-1] = W^T dZ^[l] ⊙ g'(Z^[l-1]), every layer below
        it; the error enters the backward pass at the highest failing layer.
      worst_param: ``"W"`` or ``"b"``, the worse of the two in ``worst_layer``.
      worst_entries: the entries (or directions) with the largest |manual -
        reference|, largest first.
      compared: how many entries / directions were compared.
      excluded: how many were left out because a ±ε step would cross a kink
        (finite differences), or examples left out because a pre-activation
        sits exactly on a kink of a custom activation (autodiff, jvp).
      note: anything else worth knowing (non-finite values, exclusions).
    """

    method: str
    dtype: str
    error: float
    threshold: float
    status: str
    strategy: str
    param_errors: tuple[tuple[int, str, float], ...]
    layer_errors: tuple[float, ...]
    worst_layer: int | None
    worst_param: str | None
    worst_entries: tuple[Entry, ...]
    compared: int
    excluded: int
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "FAIL"


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """The result of ``check_gradients``: immutable; ``str(report)`` is a table.

    Attributes:
      network: ``net.describe()``-style text of the checked network.
      m: batch size.
      dtype: dtype of the caller's params.
      eps: finite-difference step ε.
      cost: J at the params, in float64.
      results: one ``MethodResult`` per method, in the order requested.
    """

    network: str
    m: int
    dtype: str
    eps: float
    cost: float
    results: tuple[MethodResult, ...]

    @property
    def passed(self) -> bool:
        """True when no method failed and at least one actually compared something."""
        return all(r.passed for r in self.results) and any(r.status == "pass" for r in self.results)

    @property
    def errors(self) -> dict[str, float]:
        """``{method: overall error}`` (a fresh dict)."""
        return {r.method: r.error for r in self.results}

    def __getitem__(self, method: str) -> MethodResult:
        for r in self.results:
            if r.method == method:
                return r
        raise KeyError(f"{method!r} was not among the methods checked ({', '.join(self.errors)}).")

    @property
    def failed(self) -> tuple[MethodResult, ...]:
        return tuple(r for r in self.results if r.status == "FAIL")

    @property
    def worst_layer(self) -> int | None:
        """Where the error enters the backward pass (see ``MethodResult.worst_layer``), from the
        first failing method; None when all passed."""
        return self.failed[0].worst_layer if self.failed else None

    @property
    def worst_param(self) -> str | None:
        """``"W^[l]"`` or ``"b^[l]"``: the worse leaf of ``worst_layer``; None when all passed."""
        if not self.failed:
            return None
        r = self.failed[0]
        return f"{r.worst_param}^[{r.worst_layer}]"

    def raise_if_failed(self) -> None:
        """Raise ``GradientCheckError`` (an ``AssertionError``) with the table if any method failed."""
        if not self.passed:
            raise GradientCheckError("\n" + str(self))

    def __str__(self) -> str:
        head = (
            f"check_gradients: {self.network}, m = {self.m}, params {self.dtype}, "
            f"eps = {self.eps:g}, J = {self.cost:.6g}"
        )
        rows = [
            [r.method, r.dtype, _fmt(r.error), f"{r.threshold:.0e}", r.status, _compared(r)]
            for r in self.results
        ]
        out = [head, _table(["method", "dtype", "error", "threshold", "result", "compared"], rows)]
        if self.results and self.results[0].param_errors:
            leaves = [f"{p}^[{l}]" for l, p, _ in self.results[0].param_errors]
            cols = [[_fmt(e) for _, _, e in r.param_errors] for r in self.results]
            out.append(
                _table(
                    ["leaf", *(r.method for r in self.results)],
                    [[leaf, *(c[i] for c in cols)] for i, leaf in enumerate(leaves)],
                )
            )
        for r in self.results:
            out.append(f"{r.method}: {r.strategy}." + (f" {r.note}" if r.note else ""))
        for r in self.failed:
            out.append(
                f"{r.method} FAILED: the error enters the backward pass at layer {r.worst_layer} "
                f"(the highest layer over the threshold; layers below inherit it), worst leaf "
                f"{r.worst_param}^[{r.worst_layer}]. Largest differences:"
            )
            out.append(
                _table(
                    ["where", "manual", "reference", "|diff|"],
                    [
                        [e.where(), f"{e.manual:.8e}", f"{e.reference:.8e}", _fmt(e.abs_error)]
                        for e in r.worst_entries
                    ],
                )
            )
        out.append("PASSED" if self.passed else "FAILED")
        return "\n".join(out)


def _fmt(x: float | None) -> str:
    return "nan" if x is None or x != x else f"{x:.2e}"


def _compared(r: MethodResult) -> str:
    if not r.excluded:
        return str(r.compared)
    if r.method == "finite_difference":
        return f"{r.compared} ({r.excluded} excluded near a kink)"
    return f"{r.compared} ({r.excluded} examples left out)"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with aligned columns."""
    cells = [list(map(str, header)), *[list(map(str, r)) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join(
        [line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, cells[1:])]
    )


# --- input checks --------------------------------------------------------------------------


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(
            f"eps = {eps!r} must be a finite number > 0 (the finite-difference step; "
            "conventions §3 uses 1e-6 in float64)."
        )
    return float(eps)


def _check_methods(methods) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods = {methods!r}: choose one or more of {', '.join(METHODS)}.")
    return methods


def _check_thresholds(thresholds, methods, dtype: str) -> dict[str, float]:
    defaults = {
        "autodiff": AUTODIFF_THRESHOLDS.get(dtype, 1e-5),
        "finite_difference": FD_THRESHOLD,
        "jvp": JVP_THRESHOLD,
    }
    for name, value in dict(thresholds or {}).items():
        if name not in METHODS:
            raise ValueError(f"thresholds: unknown method {name!r}; valid: {', '.join(METHODS)}.")
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not (value > 0 and math.isfinite(value))
        ):
            raise ValueError(f"thresholds[{name!r}] = {value!r} must be a finite number > 0.")
        defaults[name] = float(value)
    return {m: defaults[m] for m in methods}


def _param_dtype(params) -> str:
    dtypes = {
        str(np.dtype(x.dtype)) if str(x.dtype) != "bfloat16" else "bfloat16" for x in jax.tree.leaves(params)
    }
    if len(dtypes) == 1:
        return dtypes.pop()
    return str(jnp.result_type(*jax.tree.leaves(params)))


def _check_finite(what: str, x) -> None:
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(
            f"{what} has non-finite values (first at index {bad}: {a[bad]}); gradients there mean nothing."
        )


def _check_problem(params, X, Y, net) -> None:
    """Clear ValueErrors for inputs that do not fit ``net`` (before any JAX tracing)."""
    check_problem(params, X, Y, net, "check_gradients")
    for l, p in enumerate(params, start=1):
        for name in PARAM_NAMES:
            _check_finite(f"check_gradients: layer {l}: {name}", p[name])
    _check_finite("check_gradients: X", X)
    _check_finite("check_gradients: Y", Y)
    _check_callables(net, np.shape(X)[1])


def _check_callables(net: Network, m: int, dtype=jnp.float32) -> None:
    """Shape-check every activation's forward/backward and the loss on (n_l, m) inputs.

    A custom g' with the wrong output shape would otherwise surface as a
    broadcasting error deep inside JAX. ``jax.eval_shape`` runs nothing.
    """
    for l, (g, n) in enumerate(zip(net.layer_activations, net.layer_sizes[1:]), start=1):
        _shape_check_activation(g, (n, m), dtype, f"layer {l}: ")
    _shape_check_loss(net.loss_fn, (net.n_L, m), dtype)


def _shape_check_activation(g: Activation, shape, dtype, where: str = "") -> None:
    Z = jax.ShapeDtypeStruct(shape, dtype)
    try:
        A = jax.eval_shape(g.forward, Z)
    except Exception as e:  # noqa: BLE001 - any failure of user code becomes a clear error
        raise ValueError(
            f"{where}activation {g.name!r}: forward(Z) failed for Z of shape {shape}: {e}"
        ) from None
    if tuple(A.shape) != tuple(shape):
        raise ValueError(
            f"{where}activation {g.name!r}: forward(Z) returned shape {tuple(A.shape)}, "
            f"expected {shape} (the shape of Z)."
        )
    try:
        dZ = jax.eval_shape(g.backward, Z, Z, Z)
    except Exception as e:  # noqa: BLE001
        raise ValueError(
            f"{where}activation {g.name!r}: backward(dA, Z, A) failed for arrays of shape {shape}: "
            f"{type(e).__name__}: {_first_line(e)}. The derivative g'(Z) must "
            "return an array of the same shape as Z."
        ) from None
    if tuple(dZ.shape) != tuple(shape):
        raise ValueError(
            f"{where}activation {g.name!r}: backward(dA, Z, A) returned shape {tuple(dZ.shape)}, "
            f"expected {shape}: the derivative g'(Z) must return an array of the same shape as Z."
        )


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0].rstrip(".") if text else ""


def _shape_check_loss(loss: Loss, shape, dtype) -> None:
    A = jax.ShapeDtypeStruct(shape, dtype)
    for what, fn, expected in (
        ("forward(AL, Y)", loss.forward, (shape[1],)),
        ("backward(AL, Y)", loss.backward, shape),
    ):
        try:
            out = jax.eval_shape(fn, A, A)
        except Exception as e:  # noqa: BLE001
            raise ValueError(
                f"loss {loss.name!r}: {what} failed for AL, Y of shape {shape}: "
                f"{type(e).__name__}: {_first_line(e)}."
            ) from None
        if tuple(out.shape) != tuple(expected):
            meaning = "one loss per example (m,)" if expected != shape else "dL/dA of the shape of AL"
            raise ValueError(
                f"loss {loss.name!r}: {what} returned shape {tuple(out.shape)}, "
                f"expected {expected}: {meaning}."
            )


# --- comparison machinery ------------------------------------------------------------------


class _Block(NamedTuple):
    layer: int  # 1..L
    param: str
    kind: str  # "entry" or "direction"
    manual: np.ndarray
    reference: np.ndarray
    mask: np.ndarray  # True where compared


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        num = float(np.linalg.norm(a - b))
        den = float(np.linalg.norm(a) + np.linalg.norm(b))
    if den != den:
        return float("nan")
    return num / max(den, TINY)


def _cat(blocks, side: str) -> np.ndarray:
    parts = [getattr(b, side)[b.mask].ravel() for b in blocks]
    return np.concatenate(parts) if parts else np.zeros(0)


def _summarise(method, dtype, blocks, threshold, strategy, n_worst, excluded=0, note="") -> MethodResult:
    compared = int(sum(int(b.mask.sum()) for b in blocks))
    error = _rel(_cat(blocks, "manual"), _cat(blocks, "reference"))
    param_errors = tuple((b.layer, b.param, _rel(b.manual[b.mask], b.reference[b.mask])) for b in blocks)
    layers = sorted({b.layer for b in blocks})
    layer_errors = tuple(
        _rel(
            _cat([b for b in blocks if b.layer == l], "manual"),
            _cat([b for b in blocks if b.layer == l], "reference"),
        )
        for l in layers
    )
    if compared == 0:
        status = "skipped"
        error = float("nan")
    else:
        status = "pass" if error <= threshold else "FAIL"
    worst_layer = worst_param = None
    if status == "FAIL":
        over = [l for l, e in zip(layers, layer_errors) if not e <= threshold]
        worst_layer = max(over) if over else layers[int(np.nanargmax(layer_errors))]
        in_layer = [(e, p) for l, p, e in param_errors if l == worst_layer]
        worst_param = max(
            in_layer, key=lambda t: -1.0 if t[0] <= threshold else (math.inf if t[0] != t[0] else t[0])
        )[1]
    nonfinite = int(sum(np.sum(~np.isfinite(b.manual[b.mask])) for b in blocks))
    if nonfinite:
        note = (note + " " if note else "") + f"The manual gradient has {nonfinite} non-finite values."
    return MethodResult(
        method,
        dtype,
        error,
        threshold,
        status,
        strategy,
        param_errors,
        layer_errors,
        worst_layer,
        worst_param,
        _worst_entries(blocks, n_worst),
        compared,
        excluded,
        note,
    )


def _worst_entries(blocks, n: int) -> tuple[Entry, ...]:
    cands = []
    for b in blocks:
        with np.errstate(all="ignore"):
            d = np.abs(b.manual - b.reference)
        d = np.where(np.isnan(d), np.inf, d)
        d = np.where(b.mask, d, -1.0).ravel()
        for t in np.argsort(-d, kind="stable")[:n]:
            if d[t] < 0:
                break
            index = tuple(int(i) for i in np.unravel_index(t, b.manual.shape))
            e = Entry(
                b.layer, b.param, index, float(b.manual.ravel()[t]), float(b.reference.ravel()[t]), b.kind
            )
            cands.append((d[t], e))
    cands.sort(key=lambda c: -c[0])
    return tuple(e for _, e in cands[:n])


def _to_host(grads) -> list[dict[str, np.ndarray]]:
    return [{k: np.asarray(np.asarray(g[k]), dtype=np.float64) for k in PARAM_NAMES} for g in grads]


def _entry_blocks(manual, reference, masks=None) -> list[_Block]:
    blocks = []
    for l, (gm, gr) in enumerate(zip(manual, reference), start=1):
        for name in PARAM_NAMES:
            mask = np.ones(gm[name].shape, bool) if masks is None else masks[l - 1][name]
            blocks.append(_Block(l, name, "entry", gm[name], gr[name], mask))
    return blocks


def _with_leaf(params, l: int, name: str, leaf):
    """params with W^[l+1] or b^[l+1] replaced (l is the 0-based list index)."""
    new = list(params)
    new[l] = dict(params[l], **{name: leaf})
    return new


def _directions(rng: np.random.Generator, k: int, shape) -> np.ndarray:
    V = rng.standard_normal((k, *shape))
    norms = np.sqrt(np.sum(V.reshape(k, -1) ** 2, axis=1)).reshape((k,) + (1,) * len(shape))
    return V / np.maximum(norms, TINY)


def _near_kink(cache, Z0, acts, margin) -> Array:
    """True when a pre-activation is within ``margin`` x (how far this step moved it) of a kink."""
    flag = jnp.zeros((), bool)
    for c, z0, g in zip(cache, Z0, acts):
        if not g.kinks:
            continue
        moved = jnp.abs(c["Z"] - z0)
        for k in g.kinks:
            flag = flag | jnp.any(jnp.abs(z0 - k) < margin * moved)
    return flag


def _custom_kink_examples(Z0, acts) -> np.ndarray:
    """(m,) mask of examples with a pre-activation exactly on a kink of a custom activation.

    There the derivative is a convention (relu'(0) = 0 in JAX, 1 in some
    texts); built-in activations follow JAX's, custom ones may not.
    """
    hit = np.zeros(np.shape(Z0[0])[1], bool)
    for z0, g in zip(Z0, acts):
        if g.kinks and ACTIVATIONS.get(g.name) is not g:
            z = np.asarray(z0)
            for k in g.kinks:
                hit |= np.any(z == k, axis=0)
    return hit


# --- check_gradients -----------------------------------------------------------------------


# --- the computations, as pure functions of arrays (jitted or not) -----------------------
#
# Each takes arrays first and hashable configuration last (net, l2, keep_prob,
# group, eps, margin), so ``jax.jit`` with those static caches one program per
# network and shape. ``check_gradients(jit=False)`` runs them op by op instead.


def _k_native(params, X, Y, key, net, l2, keep_prob):
    """(J, manual grads, jax.grad grads) in the dtype of the inputs."""
    J, gm = value_and_manual_grad(params, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)
    _, ga = value_and_autodiff_grad(params, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)
    return J, gm, ga


def _k_base(params, X, Y, key, net, l2, keep_prob):
    """(Z^[1..L], J, manual grads): the float64 reference point of FD and jvp."""
    _, cache = forward(params, X, net, key=key, keep_prob=keep_prob)
    J, g = value_and_manual_grad(params, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)
    return [c["Z"] for c in cache], J, g


def _cost_and_kink(params, X, Y, key, Z0, net, l2, keep_prob, margin):
    _, cache = forward(params, X, net, key=key, keep_prob=keep_prob)
    J = cost_from_cache(params, cache, Y, net, l2=l2)
    return J, _near_kink(cache, Z0, net.layer_activations, margin)


def _k_fd_entries(params, X, Y, key, Z0, js, ss, net, l2, keep_prob, group, eps, margin):
    """J(θ + s_i ε e_{j_i}) and its kink flag, for a batch of (j, s) over the group's entries."""
    f = lambda p: _cost_and_kink(p, X, Y, key, Z0, net, l2, keep_prob, margin)  # noqa: E731
    flat, g, _ = _group_fn(params, group, f)
    return jax.vmap(lambda j, s: g(flat.at[j].add(s * eps)))(js, ss)


def _k_fd_directions(params, X, Y, key, Z0, V, net, l2, keep_prob, group, eps, margin):
    """J(θ + ε v_i) and its kink flag, for a batch of directions v_i over the group's entries."""
    f = lambda p: _cost_and_kink(p, X, Y, key, Z0, net, l2, keep_prob, margin)  # noqa: E731
    flat, g, _ = _group_fn(params, group, f)
    return jax.vmap(lambda v: g(flat + eps * v))(V)


def _k_jvp(params, X, Y, key, T, net, l2, keep_prob, group):
    """jax.jvp of the cost along each row of T (tangents over the group's entries)."""
    f = lambda p: cost(p, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)  # noqa: E731
    flat, g, _ = _group_fn(params, group, f)
    return jax.vmap(lambda t: jax.jvp(g, (flat,), (t,))[1])(T)


_KERNELS = {
    "native": (_k_native, ("net", "l2", "keep_prob")),
    "base": (_k_base, ("net", "l2", "keep_prob")),
    "fd_entries": (_k_fd_entries, ("net", "l2", "keep_prob", "group", "eps", "margin")),
    "fd_directions": (_k_fd_directions, ("net", "l2", "keep_prob", "group", "eps", "margin")),
    "jvp": (_k_jvp, ("net", "l2", "keep_prob", "group")),
}
_JITTED = {name: jax.jit(f, static_argnames=static) for name, (f, static) in _KERNELS.items()}


def _kernel(name: str, jit: bool):
    return _JITTED[name] if jit else _KERNELS[name][0]


# --- check_gradients -----------------------------------------------------------------------


@_full_precision_matmuls
def check_gradients(
    params: list[dict],
    X: Array,
    Y: Array,
    net: Network,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    eps: float = 1e-6,
    thresholds: Mapping[str, float] | None = None,
    l2: float = 0.0,
    key: jax.Array | None = None,
    keep_prob: float = 1.0,
    fd_mode: str = "auto",
    max_entries: int = 4096,
    n_directions: int = 4,
    kink_margin: float = 4.0,
    seed: int = 0,
    n_worst: int = 5,
    jit: bool = True,
) -> GradientReport:
    """Check the hand-derived gradient against autodiff, finite differences and/or jvp.

    Args:
      params: ``[{"W": (n_l, n_{l-1}), "b": (n_l, 1)}]``, any float dtype.
      X: (n_x, m). Y: (n_L, m).
      net: the ``Network`` (custom ``Activation``/``Loss`` objects welcome).
      methods: any of ``"autodiff"`` (jax.grad, caller's dtype),
        ``"finite_difference"`` (central differences in float64), ``"jvp"``
        (jax.jvp along random directions, float64).
      eps: finite-difference step ε > 0 (conventions §3: 1e-6).
      thresholds: per-method overrides of the conventions §3 thresholds
        (autodiff 1e-5 float32 / 1e-10 float64, finite_difference 1e-6, jvp 1e-10).
      l2, key, keep_prob: as in ``value_and_manual_grad`` (a fixed dropout key
        makes the cost a deterministic function of params).
      fd_mode: ``"auto"`` (every entry of leaves up to ``max_entries`` entries,
        random directions for larger ones), ``"entries"`` or ``"directions"``.
      max_entries: largest leaf perturbed entry by entry in ``"auto"``; a
        network with at most this many parameters is perturbed in one batch.
      n_directions: random unit directions per leaf (jvp, directional FD).
      kink_margin: a finite difference is excluded when a pre-activation is
        within ``kink_margin`` x the distance the ±ε step moved it of a kink.
      seed: seed of the random directions.
      n_worst: how many worst entries each method reports.
      jit: compile each computation (one program per network and shape,
        cached across calls). ``jit=False`` runs op by op: slower for one
        network, faster for many small networks of the same shapes (whose
        primitives are then compiled once), which is what ``run_sweep`` does.

    Returns:
      A ``GradientReport``; ``report.passed``, ``str(report)``, ``report.raise_if_failed()``.

    Raises:
      ValueError: params/X/Y that do not fit ``net`` (naming the layer and
        shapes), non-finite inputs, eps <= 0 or not finite, an unknown method, or
        a custom activation/loss whose derivative returns the wrong shape.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> params = jaxnn.init_params(jax.random.key(0), net)
    >>> X, Y = jnp.ones((2, 4)), jnp.ones((1, 4))
    >>> check_gradients(params, X, Y, net).passed
    True
    """
    methods = _check_methods(methods)
    eps = _check_eps(eps)
    if fd_mode not in ("auto", "entries", "directions"):
        raise ValueError(f"fd_mode = {fd_mode!r}: choose 'auto', 'entries' or 'directions'.")
    for name, value in (("n_directions", n_directions), ("max_entries", max_entries), ("n_worst", n_worst)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} = {value!r} must be an integer >= 1.")
    if not (isinstance(kink_margin, numbers.Real) and math.isfinite(kink_margin) and kink_margin >= 1):
        raise ValueError(f"kink_margin = {kink_margin!r} must be a finite number >= 1.")
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not (math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 = {l2!r} must be a finite number >= 0 (the weight-decay strength λ).")
    if isinstance(keep_prob, bool) or not isinstance(keep_prob, numbers.Real) or not 0 < keep_prob <= 1:
        raise ValueError(f"keep_prob = {keep_prob!r} must be a number in (0, 1].")
    if keep_prob < 1 and key is None:
        raise ValueError("keep_prob < 1 asks for dropout, which needs a fixed PRNG key: pass key=...")
    _check_problem(params, X, Y, net)
    dtype = _param_dtype(params)
    thr = _check_thresholds(thresholds, methods, dtype)
    cfg = {"net": net, "l2": float(l2), "keep_prob": float(keep_prob)}
    acts = net.layer_activations
    m = int(np.shape(X)[1])
    kinked_custom = any(g.kinks and ACTIVATIONS.get(g.name) is not g for g in acts)

    base = None
    if "finite_difference" in methods or "jvp" in methods or kinked_custom:
        with jax.enable_x64(True):
            p64 = [{k: jnp.asarray(np.asarray(p[k], np.float64)) for k in PARAM_NAMES} for p in params]
            X64 = jnp.asarray(np.asarray(X, np.float64))
            Y64 = jnp.asarray(np.asarray(Y, np.float64))
            Z0, J64, g64 = _kernel("base", jit)(p64, X64, Y64, key, **cfg)
            base = _Base(p64, X64, Y64, key, Z0, float(J64), _to_host(g64))
        keep = ~_custom_kink_examples(base.Z0, acts)
    else:
        keep = np.ones(m, bool)

    results, J_native = [], math.nan
    for method in methods:
        if method == "autodiff":
            result, J_native = _autodiff(params, X, Y, key, dtype, thr[method], cfg, keep, n_worst, jit)
            results.append(result)
        elif method == "finite_difference":
            results.append(
                _finite_differences(
                    base,
                    cfg,
                    eps,
                    thr[method],
                    fd_mode,
                    max_entries,
                    n_directions,
                    kink_margin,
                    seed,
                    n_worst,
                    jit,
                )
            )
        else:
            results.append(_jvp(base, cfg, thr[method], keep, n_directions, max_entries, seed, n_worst, jit))
    return GradientReport(
        network=_describe(net),
        m=m,
        dtype=dtype,
        eps=eps,
        cost=base.J if base is not None else J_native,
        results=tuple(results),
    )


class _Base(NamedTuple):
    """The float64 point every FD / jvp comparison is made at."""

    p64: list
    X64: Array
    Y64: Array
    key: Array | None
    Z0: list
    J: float
    g64: list  # manual gradient, on the host


def _describe(net: Network) -> str:
    d = net.describe()
    return f"Network({tuple(d['layer_sizes'])}, ({', '.join(d['activations'])}), {d['loss']})"


def _drop_note(n: int, m: int) -> str:
    return (
        f"{n} of {m} examples left out: a pre-activation sits exactly on a kink of a custom "
        "activation, where its derivative is a convention that may differ from JAX's."
    )


def _autodiff(params, X, Y, key, dtype, threshold, cfg, keep, n_worst, jit):
    m = keep.size
    n_dropped = int((~keep).sum())
    strategy = "jax.grad of jaxnn.cost, in the caller's dtype"
    if not keep.any():
        return _summarise(
            "autodiff", dtype, [], threshold, strategy, n_worst, n_dropped, _drop_note(n_dropped, m)
        ), math.nan
    with jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
        jdt = jnp.dtype(dtype)
        p = [{k: jnp.asarray(q[k], jdt) for k in PARAM_NAMES} for q in params]
        Xn, Yn = jnp.asarray(X, jdt), jnp.asarray(Y, jdt)
        if n_dropped:
            Xn, Yn = Xn[:, keep], Yn[:, keep]
        J, gm, ga = _kernel("native", jit)(p, Xn, Yn, key, **cfg)
        blocks = _entry_blocks(_to_host(gm), _to_host(ga))
    note = _drop_note(n_dropped, m) if n_dropped else ""
    return _summarise("autodiff", dtype, blocks, threshold, strategy, n_worst, n_dropped, note), float(J)


def _groups(p64, max_entries: int) -> list[tuple[tuple[int, str], ...]]:
    """Leaves evaluated together in one batched pass.

    A small network (at most ``max_entries`` parameters) is one group: one
    vmapped evaluation perturbs everything, few dispatches. A larger one goes
    leaf by leaf, so each batched pass re-evaluates only the layers from the
    perturbed leaf on (``jax.vmap`` batches only what depends on it).
    """
    leaves = tuple((l, name) for l in range(len(p64)) for name in PARAM_NAMES)
    if sum(p64[l][name].size for l, name in leaves) <= max_entries:
        return [leaves]
    return [(leaf,) for leaf in leaves]


def _group_fn(params, group, fn):
    """``fn(params)`` as a function of the group's leaves concatenated into one flat vector."""
    shapes = [params[l][name].shape for l, name in group]
    sizes = [math.prod(s) for s in shapes]
    flat = jnp.concatenate([params[l][name].reshape(-1) for l, name in group])

    def f(new_flat):
        p, start = params, 0
        for (l, name), shape, size in zip(group, shapes, sizes):
            p = _with_leaf(p, l, name, new_flat[start : start + size].reshape(shape))
            start += size
        return fn(p)

    return flat, f, sizes


def _batch_size(n: int, chunk: int = 512) -> int:
    # Powers of two from 256 up: the eager primitives are compiled once per
    # shape, and a sweep over networks of similar size then reuses them.
    return min(chunk, max(256, 1 << (max(n, 1) - 1).bit_length()))


def _finite_differences(
    base, cfg, eps, threshold, fd_mode, max_entries, n_directions, kink_margin, seed, n_worst, jit
):
    p64, g64 = base.p64, base.g64
    rng = np.random.default_rng(seed)
    blocks, by_entry, by_dir = {}, [], []
    args = (p64, base.X64, base.Y64, base.key, base.Z0)
    kcfg = dict(cfg, eps=eps, margin=float(kink_margin))
    with jax.enable_x64(True):
        for group in _groups(p64, max_entries):
            by_entries = tuple(
                (l, name)
                for l, name in group
                if fd_mode == "entries" or (fd_mode == "auto" and p64[l][name].size <= max_entries)
            )
            if by_entries:
                sizes = [p64[l][name].size for l, name in by_entries]
                n = sum(sizes)
                B = _batch_size(2 * n)
                js = np.concatenate([np.arange(n), np.arange(n)])
                ss = np.concatenate([np.ones(n), -np.ones(n)])
                J, kink = np.zeros(2 * n), np.zeros(2 * n, bool)
                for start in range(0, 2 * n, B):
                    j, s = js[start : start + B], ss[start : start + B]
                    k = j.size
                    pad = B - k  # padded with copies of the first perturbation, then dropped
                    j, s = np.concatenate([j, np.zeros(pad, j.dtype)]), np.concatenate([s, np.ones(pad)])
                    Jb, kb = _kernel("fd_entries", jit)(
                        *args, jnp.asarray(j), jnp.asarray(s), group=by_entries, **kcfg
                    )
                    J[start : start + k], kink[start : start + k] = np.asarray(Jb)[:k], np.asarray(kb)[:k]
                x = np.concatenate([np.asarray(p64[l][name]).ravel() for l, name in by_entries])
                step = (x + eps) - (x - eps)  # the step actually taken, after rounding
                with np.errstate(all="ignore"):
                    fd = (J[:n] - J[n:]) / step
                mask = ~(kink[:n] | kink[n:])
                start = 0
                for (l, name), size in zip(by_entries, sizes):
                    shape = p64[l][name].shape
                    sl = slice(start, start + size)
                    blocks[l, name] = _Block(
                        l + 1, name, "entry", g64[l][name], fd[sl].reshape(shape), mask[sl].reshape(shape)
                    )
                    by_entry.append(f"{name}^[{l + 1}]")
                    start += size
            for l, name in group:
                if (l, name) in blocks:
                    continue
                shape = p64[l][name].shape
                V = _directions(rng, n_directions, shape).reshape(n_directions, -1)
                J, kink = _kernel("fd_directions", jit)(
                    *args, jnp.asarray(np.concatenate([V, -V])), group=((l, name),), **kcfg
                )
                J, kink = np.asarray(J), np.asarray(kink)
                k = n_directions
                manual = V @ g64[l][name].reshape(-1)
                blocks[l, name] = _Block(
                    l + 1, name, "direction", manual, (J[:k] - J[k:]) / (2 * eps), ~(kink[:k] | kink[k:])
                )
                by_dir.append(f"{name}^[{l + 1}]")
    blocks = [blocks[l, name] for l in range(len(p64)) for name in PARAM_NAMES]
    excluded = int(sum((~b.mask).sum() for b in blocks))
    parts = []
    if by_entry:
        parts.append(f"central differences in float64, every entry of {', '.join(by_entry)}")
    if by_dir:
        parts.append(
            f"{n_directions} random unit directions v in each of {', '.join(by_dir)} "
            "(<g, v> vs (J(θ+εv) - J(θ-εv))/2ε, float64)"
        )
    note = ""
    if excluded:
        note = (
            f"{excluded} finite differences excluded: a ±ε step would bring a pre-activation within "
            f"{kink_margin:g}x its move of a kink."
        )
    return _summarise(
        "finite_difference", "float64", blocks, threshold, "; ".join(parts), n_worst, excluded, note
    )


def _jvp(base, cfg, threshold, keep, n_directions, max_entries, seed, n_worst, jit) -> MethodResult:
    m = keep.size
    n_dropped = int((~keep).sum())
    strategy = (
        f"jax.jvp of jaxnn.cost along {n_directions} random unit directions v per leaf, vs <g, v>, float64"
    )
    if not keep.any():
        return _summarise(
            "jvp", "float64", [], threshold, strategy, n_worst, n_dropped, _drop_note(n_dropped, m)
        )
    rng = np.random.default_rng(seed + 1)
    blocks = {}
    p64, g64 = base.p64, base.g64
    with jax.enable_x64(True):
        X, Y = base.X64, base.Y64
        if n_dropped:
            X, Y = X[:, keep], Y[:, keep]
            g64 = _to_host(_kernel("base", jit)(p64, X, Y, base.key, **cfg)[2])
        for group in _groups(p64, max_entries):
            sizes = [p64[l][name].size for l, name in group]
            # n_directions per leaf, each zero outside its own leaf; padded to a
            # power of two (>= 32) rows so shapes repeat across networks.
            D = len(group) * n_directions
            T = np.zeros((max(32, 1 << (D - 1).bit_length()), sum(sizes)))
            start = 0
            for i, size in enumerate(sizes):
                T[i * n_directions : (i + 1) * n_directions, start : start + size] = _directions(
                    rng, n_directions, (size,)
                )
                start += size
            ref = np.asarray(_kernel("jvp", jit)(p64, X, Y, base.key, jnp.asarray(T), group=group, **cfg))[:D]
            start = 0
            for i, ((l, name), size) in enumerate(zip(group, sizes)):
                rows = slice(i * n_directions, (i + 1) * n_directions)
                manual = T[rows, start : start + size] @ g64[l][name].reshape(-1)
                blocks[l, name] = _Block(
                    l + 1, name, "direction", manual, ref[rows], np.ones(n_directions, bool)
                )
                start += size
    blocks = [blocks[l, name] for l in range(len(p64)) for name in PARAM_NAMES]
    note = _drop_note(n_dropped, m) if n_dropped else ""
    return _summarise("jvp", "float64", blocks, threshold, strategy, n_worst, n_dropped, note)


# --- check_activation / check_loss ---------------------------------------------------------


class PointReport(NamedTuple):
    """The worst input of an activation or loss check.

    ``where`` is the input (``z`` for an elementwise activation, a column of Z,
    or ``AL``/``Y`` columns for a loss); ``manual`` and ``reference`` the two
    derivatives there.
    """

    where: str
    manual: str
    reference: str


@dataclasses.dataclass(frozen=True)
class FunctionReport:
    """Result of ``check_activation`` / ``check_loss``; ``str(report)`` is readable.

    Attributes:
      kind: ``"activation"`` or ``"loss"``.
      name: the activation's or loss's name.
      dtype: dtype of the check (float64 by default).
      error: largest relative error (see the function's docstring); nan if a
        manual derivative is not finite where the function is.
      threshold: pass/fail threshold.
      n_points: number of inputs compared.
      n_skipped: inputs outside the function's domain (its value, or the
        autodiff reference, is not finite there) and so not compared.
      worst: the input with the largest disagreement (a non-finite manual
        derivative first).
      strategy: what was compared with what.
    """

    kind: str
    name: str
    dtype: str
    error: float
    threshold: float
    n_points: int
    n_skipped: int
    worst: PointReport | None
    strategy: str

    @property
    def passed(self) -> bool:
        return self.n_points > 0 and self.error <= self.threshold

    def raise_if_failed(self) -> None:
        """Raise ``GradientCheckError`` with ``str(self)`` unless passed."""
        if not self.passed:
            raise GradientCheckError("\n" + str(self))

    def __str__(self) -> str:
        lines = [
            f"check_{self.kind}({self.name!r}): {'PASSED' if self.passed else 'FAILED'}: error "
            f"{_fmt(self.error)} (threshold {self.threshold:.0e}, {self.dtype}) over {self.n_points} "
            f"inputs, {self.n_skipped} skipped outside the domain.",
            f"  compared: {self.strategy}.",
        ]
        if self.worst is not None:
            lines.append(f"  worst input: {self.worst.where}")
            lines.append(f"    manual:    {self.worst.manual}")
            lines.append(f"    reference: {self.worst.reference}")
        return "\n".join(lines)


ActivationReport = FunctionReport
LossReport = FunctionReport

# Inputs for check_activation: a dense grid where activations bend, then large |z|
# (saturation, overflow of exp) up to where float64 exp overflows.
_Z_GRID = np.concatenate(
    [np.linspace(-8.0, 8.0, 161), [-1e-3, 1e-3], np.array([10, 15, 20, 30, 40, 60, 100, 300, 700, 750.0])]
)
_Z_GRID = np.concatenate([_Z_GRID, -_Z_GRID[-10:]])
_SCALES = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 700.0)


def _float_dtype(dtype) -> str:
    name = str(jnp.dtype(dtype))
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype = {dtype!r}: check in 'float64' (default) or 'float32'.")
    return name


def _default_threshold(threshold, dtype: str) -> float:
    if threshold is None:
        return AUTODIFF_THRESHOLDS[dtype]
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not (threshold > 0 and math.isfinite(threshold))
    ):
        raise ValueError(f"threshold = {threshold!r} must be a finite number > 0.")
    return float(threshold)


def _column(x: np.ndarray) -> str:
    return np.array2string(np.asarray(x), precision=10, max_line_width=200)


@_full_precision_matmuls
def check_activation(
    activation: str | Activation,
    *,
    Z: Array | None = None,
    dtype="float64",
    threshold: float | None = None,
    seed: int = 0,
) -> FunctionReport:
    """Verify an activation's hand-written backward against JAX (formulas §2, §4a-b).

    Compares ``activation.backward(dA, Z, A)`` with ``jax.vjp`` of
    ``activation.forward`` for a random dA. The default inputs are a grid of z
    in [-8, 8] plus ±10 ... ±750 (past float64's exp overflow) for elementwise activations (one z per row of
    a (n, 1) Z), and columns of 4 units at scales 0.1 ... 700 for softmax-like
    ones. Inputs where g(Z) or the reference is not finite are skipped
    (outside the domain); a non-finite manual derivative where g is finite is
    a failure, reported with the input. The error is the normwise relative
    error over all inputs (conventions §3), threshold 1e-10 in float64.

    Args:
      activation: a name or an ``Activation`` (``jaxnn.make_activation(name,
        g, g_prime)``).
      Z: your own inputs (n, m) instead of the defaults.
      dtype: ``"float64"`` (default; switched on in a scoped way) or ``"float32"``.
      threshold: pass/fail threshold (default 1e-10 float64, 1e-5 float32).
      seed: seed of the random dA.

    Raises:
      ValueError: unknown name, or a forward/backward returning the wrong shape.

    >>> swish = jaxnn.make_activation("swish", lambda z: z * jax.nn.sigmoid(z),
    ...     lambda z: jax.nn.sigmoid(z) * (1 + z * (1 - jax.nn.sigmoid(z))))
    >>> check_activation(swish).passed
    True
    """
    g = get_activation(activation)
    dtype = _float_dtype(dtype)
    threshold = _default_threshold(threshold, dtype)
    rng = np.random.default_rng(seed)
    if Z is None:
        if g.elementwise:
            Zh = _Z_GRID[:, None]
        else:
            Zh = np.concatenate([s * rng.standard_normal((4, 8)) for s in _SCALES], axis=1)
    else:
        Zh = np.asarray(Z, np.float64)
        if Zh.ndim != 2:
            raise ValueError(f"check_activation: Z must be 2-D (n, m), got shape {Zh.shape}.")
    with jax.enable_x64(dtype == "float64"):
        jdt = jnp.dtype(dtype)
        _shape_check_activation(g, Zh.shape, jdt, "check_activation: ")
        Zj = jnp.asarray(Zh, jdt)
        dA = jnp.asarray(rng.standard_normal(Zh.shape), jdt)
        A, vjp = jax.vjp(g.forward, Zj)
        manual = np.asarray(g.backward(dA, Zj, A), np.float64)
        reference = np.asarray(vjp(dA)[0], np.float64)
        A = np.asarray(A, np.float64)
    # An input is outside the domain when g or the reference derivative is not
    # finite there; for non-elementwise g the unit is a column.
    if g.elementwise:
        valid = np.isfinite(A) & np.isfinite(reference)
    else:
        valid = np.broadcast_to(np.all(np.isfinite(A) & np.isfinite(reference), axis=0), Zh.shape)
    error = _rel(manual[valid], reference[valid])
    strategy = f"backward(dA, Z, A) vs jax.vjp(forward, Z)(dA), random dA, Z of shape {Zh.shape}"
    with np.errstate(all="ignore"):
        d = np.where(valid, np.abs(manual - reference), -1.0)
    d = np.where(np.isnan(d), np.inf, d)
    worst = None
    if valid.any():
        i, j = np.unravel_index(int(np.argmax(d)), d.shape)
        if g.elementwise:
            # report g'(z) itself, recovered from dA (nonzero almost surely)
            dai = float(np.asarray(dA)[i, j])
            with np.errstate(all="ignore"):
                gm, gr = float(manual[i, j] / dai), float(reference[i, j] / dai)
            worst = PointReport(
                f"z = {float(Zh[i, j])!r} (g(z) = {float(A[i, j])!r})",
                f"g'(z) = {gm!r}",
                f"g'(z) = {gr!r} (jax.vjp)",
            )
        else:
            worst = PointReport(
                f"column {j} of Z: {_column(Zh[:, j])}",
                f"dZ = {_column(manual[:, j])}",
                f"dZ = {_column(reference[:, j])} (jax.vjp)",
            )
    return FunctionReport(
        "activation", g.name, dtype, error, threshold, int(valid.sum()), int((~valid).sum()), worst, strategy
    )


def _loss_inputs(loss: Loss, activation, n_L: int, rng) -> tuple[np.ndarray, np.ndarray, str]:
    if activation is None:
        activation = loss.activations[0] if loss.activations else "identity"
    g = get_activation(activation)
    Z = np.concatenate([s * rng.standard_normal((n_L, 8)) for s in _SCALES], axis=1)
    with jax.enable_x64(True):
        AL = np.asarray(g.forward(jnp.asarray(Z)), np.float64)
    m = Z.shape[1]
    if g.name == "softmax":
        Y = np.eye(n_L)[:, rng.integers(0, n_L, m)]
    elif g.name == "sigmoid":
        Y = (rng.random((n_L, m)) < 0.5).astype(np.float64)
    else:
        Y = rng.standard_normal((n_L, m))
    return AL, Y, g.name


@_full_precision_matmuls
def check_loss(
    loss: str | Loss,
    *,
    activation: str | Activation | None = None,
    AL: Array | None = None,
    Y: Array | None = None,
    n_L: int = 3,
    dtype="float64",
    threshold: float | None = None,
    seed: int = 0,
) -> FunctionReport:
    """Verify a loss's hand-written dL/dA^[L] against ``jax.grad`` (formulas §3, §4a).

    ``loss.backward(AL, Y)`` is compared with ``jax.grad`` of
    ``sum(loss.forward(AL, Y))`` with respect to AL (each example's loss
    depends on its own column only, so this is each column's derivative). By
    default AL = g(Z) for the output activation the loss pairs with (its first
    ``loss.activations``, else identity) and Z at scales 0.1 ... 700, Y
    one-hot / 0-1 / real to match. Examples whose loss or reference gradient is
    not finite are outside the domain and skipped; a non-finite manual
    derivative on a valid example is a failure, reported with that example's
    AL and Y. The error is the largest per-example normwise relative error
    (examples have very different scales), threshold 1e-10 in float64.

    Args:
      loss: a name or a ``Loss`` (``jaxnn.make_loss(name, L, dL_dA)``).
      activation: output activation generating AL (default: see above).
      AL, Y: your own inputs (n_L, m) instead of the defaults (give both).
      n_L: output units of the default inputs.
      dtype: ``"float64"`` (default) or ``"float32"``.
      threshold: pass/fail threshold (default 1e-10 float64, 1e-5 float32).
      seed: seed of the default inputs.

    Raises:
      ValueError: unknown name, or forward/backward returning the wrong shape.

    >>> check_loss("bce").passed
    True
    """
    loss = get_loss(loss)
    dtype = _float_dtype(dtype)
    threshold = _default_threshold(threshold, dtype)
    rng = np.random.default_rng(seed)
    if (AL is None) != (Y is None):
        raise ValueError("check_loss: give both AL and Y, or neither.")
    if AL is None:
        ALh, Yh, act = _loss_inputs(loss, activation, n_L, rng)
        origin = f"AL = {act}(Z), Z at scales {', '.join(f'{s:g}' for s in _SCALES)}"
    else:
        ALh, Yh = np.asarray(AL, np.float64), np.asarray(Y, np.float64)
        if ALh.ndim != 2 or ALh.shape != Yh.shape:
            raise ValueError(f"check_loss: AL and Y must both be (n_L, m), got {ALh.shape} and {Yh.shape}.")
        origin = "the given AL, Y"
    with jax.enable_x64(dtype == "float64"):
        jdt = jnp.dtype(dtype)
        _shape_check_loss(loss, ALh.shape, jdt)
        A, Yj = jnp.asarray(ALh, jdt), jnp.asarray(Yh, jdt)
        value = np.asarray(loss.forward(A, Yj), np.float64)
        manual = np.asarray(loss.backward(A, Yj), np.float64)
        reference = np.asarray(jax.grad(lambda a: jnp.sum(loss.forward(a, Yj)))(A), np.float64)
    valid = np.isfinite(value) & np.all(np.isfinite(reference), axis=0)
    errors = np.array([_rel(manual[:, i], reference[:, i]) for i in range(manual.shape[1])])
    errors = np.where(np.isnan(errors), np.inf, errors)
    worst = None
    error = float("nan")
    if valid.any():
        i = int(np.argmax(np.where(valid, errors, -1.0)))
        error = float(errors[i]) if np.isfinite(errors[i]) else float("nan")
        worst = PointReport(
            f"example {i}: AL[:, {i}] = {_column(ALh[:, i])}, Y[:, {i}] = {_column(Yh[:, i])}",
            f"dL/dA = {_column(manual[:, i])}",
            f"dL/dA = {_column(reference[:, i])} (jax.grad)",
        )
    strategy = f"backward(AL, Y) vs jax.grad(sum(forward(AL, Y))), per example, on {origin}"
    return FunctionReport(
        "loss", loss.name, dtype, error, threshold, int(valid.sum()), int((~valid).sum()), worst, strategy
    )


# --- the built-in sweep (``jaxnn gradcheck``) ----------------------------------------------

SWEEP_HIDDEN: tuple[str, ...] = tuple(ACTIVATIONS)
# Every valid output pairing: a loss with the activations it names, mse with all.
SWEEP_PAIRINGS: tuple[tuple[str, str], ...] = tuple(
    (a, loss.name) for loss in LOSSES.values() for a in (loss.activations or tuple(ACTIVATIONS))
)


class SweepRow(NamedTuple):
    """One case of ``run_sweep``: the errors of each method (nan if not run)."""

    case: str
    autodiff: float
    finite_difference: float
    jvp: float
    passed: bool
    seconds: float
    report: GradientReport


def sweep_cases(
    depths: Sequence[int] = (1, 2, 3, 4),
    hidden: Sequence[str] | None = None,
    pairings: Sequence[tuple[str, str]] | None = None,
) -> list[tuple[tuple[str, ...], str]]:
    """``[(activations, loss)]``: each hidden activation (all L-1 hidden layers) x each output
    pairing x each depth L; depth 1 has no hidden layer, so one case per pairing."""
    hidden = SWEEP_HIDDEN if hidden is None else tuple(hidden)
    pairings = SWEEP_PAIRINGS if pairings is None else tuple(pairings)
    cases = []
    for L in depths:
        if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 1:
            raise ValueError(f"depths: {L!r} is not a depth; use integers >= 1.")
        for out, loss in pairings:
            for h in hidden if L > 1 else hidden[:1]:
                cases.append(((h,) * (L - 1) + (out,), loss))
    return cases


def make_problem(net: Network, m: int, dtype="float32", seed: int = 0):
    """``(params, X, Y)`` for checking ``net``: random, with targets valid for its loss.

    Weights ~ N(0, 1/n_{l-1}); biases ~ 0.1 N(0, 1) (nonzero, so db and the
    shifted activations are exercised) plus 0.5 on the output layer (keeps ReLU
    outputs alive); X ~ N(0, 1); Y one-hot (softmax output), 0/1 (sigmoid) or
    N(0, 1). Drawn with NumPy on the host: no JAX compilation. Call inside
    ``jax.enable_x64(True)`` for float64.
    """
    rng = np.random.default_rng(seed)
    jdt = jnp.dtype(dtype)
    params = []
    for l, (n_in, n_out) in enumerate(zip(net.layer_sizes[:-1], net.layer_sizes[1:]), start=1):
        b = 0.1 * rng.standard_normal((n_out, 1)) + (0.5 if l == net.L else 0.0)
        W = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
        params.append({"W": jnp.asarray(W, jdt), "b": jnp.asarray(b, jdt)})
    X = rng.standard_normal((net.n_x, m))
    out = net.layer_activations[-1].name
    if out == "softmax":
        Y = np.eye(net.n_L)[:, rng.integers(0, net.n_L, m)]
    elif out == "sigmoid":
        Y = (rng.random((net.n_L, m)) < 0.5).astype(np.float64)
    else:
        Y = rng.standard_normal((net.n_L, m))
    return params, jnp.asarray(X, jdt), jnp.asarray(Y, jdt)


def run_sweep(
    *,
    depths: Sequence[int] = (1, 2, 3, 4),
    hidden: Sequence[str] | None = None,
    pairings: Sequence[tuple[str, str]] | None = None,
    width: int = 4,
    m: int = 8,
    dtype="float32",
    seed: int = 0,
    eps: float = 1e-6,
    methods: Sequence[str] = METHODS,
    on_row: Callable[[SweepRow], None] | None = None,
) -> list[SweepRow]:
    """``check_gradients`` on every case of ``sweep_cases``: what ``jaxnn gradcheck --sweep`` runs.

    Every layer has ``width`` units (n_x = n_1 = ... = n_L): the eager
    primitives are then compiled once for the whole sweep. Wrong transposes
    are still caught: they give wrong numbers, not only wrong shapes.

    Args:
      depths, hidden, pairings: the grid (defaults: 1-4, every activation,
        every valid output pairing: 152 cases).
      width, m: layer width and batch size.
      dtype: the model's dtype, ``"float32"`` or ``"float64"``.
      seed, eps, methods: passed to ``make_problem`` / ``check_gradients``.
      on_row: called with each row as soon as it is done (for streaming output).

    Returns:
      One ``SweepRow`` per case. Each case's X is (width, m), its Y (width, m)
      and every W^[l] (width, width) (formulas §1 shapes; the check is of formulas §4).

    >>> rows = run_sweep(depths=(1,), pairings=[("sigmoid", "bce")], width=2, m=4, methods=("autodiff",))
    >>> [(row.case, row.passed) for row in rows]
    [('2-2 sigmoid bce', True)]
    """
    dtype = _float_dtype(dtype)
    methods = _check_methods(methods)
    _check_eps(eps)
    for name, value in (("width", width), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} = {value!r} must be an integer >= 1.")
    cases = sweep_cases(depths, hidden, pairings)
    rows = []
    with jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext():
        for i, (acts, loss) in enumerate(cases):
            net = Network((width,) * (len(acts) + 1), acts, loss)
            params, X, Y = make_problem(net, m, dtype, seed + i)
            t = time.perf_counter()
            report = check_gradients(params, X, Y, net, methods=methods, eps=eps, seed=seed, jit=False)
            seconds = time.perf_counter() - t
            errors = report.errors
            row = SweepRow(
                f"{'-'.join(map(str, net.layer_sizes))} {','.join(acts)} {loss}",
                errors.get("autodiff", math.nan),
                errors.get("finite_difference", math.nan),
                errors.get("jvp", math.nan),
                report.passed,
                seconds,
                report,
            )
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows
