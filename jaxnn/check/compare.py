"""Comparison of a gradient with a reference: normwise relative errors per leaf and layer (conventions §3)."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.activations import ACTIVATIONS
from jaxnn.check.options import PARAM_NAMES, TINY
from jaxnn.check.report import Entry, MethodResult

Array = jax.Array


# --- comparison machinery ------------------------------------------------------------------


class Block(NamedTuple):
    layer: int  # 1..L
    param: str
    kind: str  # "entry" or "direction"
    manual: np.ndarray
    reference: np.ndarray
    mask: np.ndarray  # True where compared


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        num = float(np.linalg.norm(a - b))
        den = float(np.linalg.norm(a) + np.linalg.norm(b))
    if den != den:
        return float("nan")
    return num / max(den, TINY)


def concat_side(blocks, side: str) -> np.ndarray:
    parts = [getattr(b, side)[b.mask].ravel() for b in blocks]
    return np.concatenate(parts) if parts else np.zeros(0)


def summarise(method, dtype, blocks, threshold, strategy, n_worst, excluded=0, note="") -> MethodResult:
    compared = int(sum(int(b.mask.sum()) for b in blocks))
    error = rel_error(concat_side(blocks, "manual"), concat_side(blocks, "reference"))
    param_errors = tuple((b.layer, b.param, rel_error(b.manual[b.mask], b.reference[b.mask])) for b in blocks)
    layers = sorted({b.layer for b in blocks})
    layer_errors = tuple(
        rel_error(
            concat_side([b for b in blocks if b.layer == l], "manual"),
            concat_side([b for b in blocks if b.layer == l], "reference"),
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
        worst_entries(blocks, n_worst),
        compared,
        excluded,
        note,
    )


def worst_entries(blocks, n: int) -> tuple[Entry, ...]:
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


def to_host(grads) -> list[dict[str, np.ndarray]]:
    return [{k: np.asarray(np.asarray(g[k]), dtype=np.float64) for k in PARAM_NAMES} for g in grads]


def entry_blocks(manual, reference, masks=None) -> list[Block]:
    blocks = []
    for l, (gm, gr) in enumerate(zip(manual, reference), start=1):
        for name in PARAM_NAMES:
            mask = np.ones(gm[name].shape, bool) if masks is None else masks[l - 1][name]
            blocks.append(Block(l, name, "entry", gm[name], gr[name], mask))
    return blocks


def with_leaf(params, l: int, name: str, leaf):
    """params with W^[l+1] or b^[l+1] replaced (l is the 0-based list index)."""
    new = list(params)
    new[l] = dict(params[l], **{name: leaf})
    return new


def unit_directions(rng: np.random.Generator, k: int, shape) -> np.ndarray:
    V = rng.standard_normal((k, *shape))
    norms = np.sqrt(np.sum(V.reshape(k, -1) ** 2, axis=1)).reshape((k,) + (1,) * len(shape))
    return V / np.maximum(norms, TINY)


def near_kink(cache, Z0, acts, margin) -> Array:
    """True when a pre-activation is within ``margin`` x (how far this step moved it) of a kink."""
    flag = jnp.zeros((), bool)
    for c, z0, g in zip(cache, Z0, acts):
        if not g.kinks:
            continue
        moved = jnp.abs(c["Z"] - z0)
        for k in g.kinks:
            flag = flag | jnp.any(jnp.abs(z0 - k) < margin * moved)
    return flag


def custom_kink_examples(Z0, acts) -> np.ndarray:
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
