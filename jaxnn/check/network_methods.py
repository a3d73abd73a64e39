"""``check_gradients``' side of the engine: its leaves W^[l], b^[l] and φ = J (formulas §4; conventions §3).

``network_problem`` describes a network check as the engine's ``Problem``
(J evaluated by ``network_kernels``, each perturbation flagged when it brings
a pre-activation near a kink); ``autodiff_result`` runs the engine's
reference method against ``jax.grad``. The comparisons are
``jaxnn.check.engine``'s, as for every checker.
"""

from __future__ import annotations

import numpy as np

from jaxnn.check.compare import summarise
from jaxnn.check.engine import Leaf, Problem, reference_method
from jaxnn.check.network_kernels import groups, kernel
from jaxnn.check.options import PARAM_NAMES
from jaxnn.check.perturb import partner_dtype
from jaxnn.core.compat import enable_x64, to_device


class FDContext:
    """The float64 point every FD / jvp comparison is made at, and the run options.

    Args:
      p64: params in float64.
      X64: X in float64.
      Y64: Y in float64.
      key: the dropout key (or None).
      Z0: the unperturbed Z^[1..L].
      cfg: ``{"net", "l2", "keep_prob"}``.
      eps: ε.
      n_worst: worst entries to keep.
      jit: compiled kernels or eager.
      seed: seed of the random directions.
    """

    def __init__(self, p64, X64, Y64, key, Z0, cfg, eps, n_worst, jit, seed):
        self.p64, self.X64, self.Y64, self.key, self.Z0 = p64, X64, Y64, key, [to_device(z) for z in Z0]
        self.cfg, self.eps, self.n_worst, self.jit, self.seed = cfg, eps, n_worst, jit, seed


def drop_note(n: int, m: int) -> str:
    """The note for ``n`` of ``m`` examples left out (a pre-activation exactly on a custom kink).

    Args:
      n: examples left out.
      m: examples in all.

    >>> drop_note(1, 8)[:14]
    '1 of 8 example'
    """
    return (
        f"{n} of {m} examples left out: a pre-activation sits exactly on a kink of a custom "
        "activation, where its derivative is a convention that may differ from JAX's."
    )


def _per_leaf(tree, L: int) -> list[np.ndarray]:
    """Per-layer ``{"W", "b"}`` arrays -> one (1, size) float64 array per leaf W^[1], b^[1], ..."""
    return [np.asarray(tree[l][k], np.float64).reshape(1, -1) for l in range(L) for k in PARAM_NAMES]


def network_leaves(p64) -> tuple[Leaf, ...]:
    """The ``Leaf`` of each W^[l], b^[l], in report order.

    Args:
      p64: the params ``[{"W", "b"}]``.

    >>> [leaf.name for leaf in network_leaves([{"W": np.ones((1, 2)), "b": np.ones((1, 1))}])]
    ['W^[1]', 'b^[1]']
    """
    return tuple(
        Leaf(f"{k}^[{l + 1}]", tuple(np.shape(p[k])), l + 1, k)
        for l, p in enumerate(p64)
        for k in PARAM_NAMES
    )


def autodiff_result(side, rounding, dtype, threshold, keep, n_worst):
    """The autodiff ``MethodResult``: the gradient under test vs ``jax.grad``, in the caller's dtype.

    Args:
      side: ``(J, gradient under test, jax.grad gradient)`` in the caller's dtype.
      rounding: ``{"manual", "autodiff"}`` -> per-layer dicts of (r_native, r_64).
      dtype: the caller's dtype.
      threshold: rtol.
      keep: (m,) examples compared.
      n_worst: worst entries to keep.
    """
    m, n_dropped = keep.size, int((~keep).sum())
    strategy = (
        f"jax.grad of jaxnn.cost in {dtype}; noise: both sides' rounding, from their recomputation "
        f"in {partner_dtype(dtype)}"
    )
    note = drop_note(n_dropped, m) if n_dropped else ""
    if not keep.any():
        return summarise("autodiff", dtype, [], threshold, strategy, n_worst, n_dropped, note)
    _, gm, ga = side
    L = len(gm)
    noise = [
        a + b
        for a, b in zip(
            _per_leaf([{k: rounding["manual"][l][k][0] for k in PARAM_NAMES} for l in range(L)], L),
            _per_leaf([{k: rounding["autodiff"][l][k][0] for k in PARAM_NAMES} for l in range(L)], L),
        )
    ]
    leaves = network_leaves(gm)
    return reference_method(
        "autodiff",
        dtype,
        leaves,
        1,
        _per_leaf(gm, L),
        _per_leaf(ga, L),
        noise,
        threshold,
        strategy,
        n_worst,
        n_dropped,
        note,
    )


def network_problem(ctx, g64, rounding, delta_J, max_entries, margin, g_keep=None, cols=None) -> Problem:
    """The ``Problem`` of a ``check_gradients`` check: φ = J(θ), one cotangent.

    Args:
      ctx: the ``FDContext``.
      g64: the gradient under test in float64, per-layer dicts.
      rounding: ``{"manual", "autodiff"}`` -> per-layer dicts of (r_native, r_64).
      delta_J: the rounding of one evaluation of J.
      max_entries: the largest network perturbed in one group.
      margin: the kink margin.
      g_keep: the gradient under test on the kept examples (for jvp; default g64).
      cols: selects the kept columns of an (n, m) array (for jvp).

    Returns:
      The ``Problem``; its runs flag a perturbation that brings a pre-activation near a kink.
    """
    p64, L = ctx.p64, len(ctx.p64)
    leaves = network_leaves(p64)
    index = {(leaf.layer - 1, leaf.param): i for i, leaf in enumerate(leaves)}
    args = (p64, ctx.X64, ctx.Y64, ctx.key, ctx.Z0)
    r_man = lambda j: _per_leaf(  # noqa: E731
        [{k: rounding[j][l][k][1] for k in PARAM_NAMES} for l in range(L)], L
    )

    def entry_groups(ids):
        out = []
        for group in groups(p64, max_entries):
            chosen = tuple(lk for lk in group if index[lk] in ids)
            if not chosen:
                continue

            def run(js, hs, chosen=chosen):
                with enable_x64(True):
                    J, flag = kernel("fd_entries", ctx.jit)(
                        *args, to_device(js), to_device(hs), group=chosen, margin=float(margin), **ctx.cfg
                    )
                return np.asarray(J)[:, None], np.asarray(flag)

            x = np.concatenate([np.asarray(p64[l][k], np.float64).ravel() for l, k in chosen])
            out.append(([index[lk] for lk in chosen], x, run))
        return out

    def direction_run(i):
        leaf = ((leaves[i].layer - 1, leaves[i].param),)

        def run(D):
            with enable_x64(True):
                J, flag = kernel("fd_deltas", ctx.jit)(
                    *args, to_device(D), group=leaf, margin=float(margin), **ctx.cfg
                )
            return np.asarray(J)[:, None], np.asarray(flag)

        return run

    def jvp_groups():
        with enable_x64(True):
            X, Y = to_device(cols(np.asarray(ctx.X64))), to_device(cols(np.asarray(ctx.Y64)))
        out = []
        for group in groups(p64, max_entries):

            def run(T, group=group):
                # padded to a power of two (>= 32) rows, so shapes repeat across networks
                rows = max(32, 1 << (len(T) - 1).bit_length())
                Tp = np.zeros((rows, T.shape[1]))
                Tp[: len(T)] = T
                with enable_x64(True):
                    ref = kernel("jvp", ctx.jit)(p64, X, Y, ctx.key, to_device(Tp), group=group, **ctx.cfg)
                return np.asarray(ref, np.float64)[: len(T), None]

            out.append(([index[lk] for lk in group], run))
        return out

    bound = [
        np.array([np.linalg.norm(a) + np.linalg.norm(b)]) for a, b in zip(r_man("manual"), r_man("autodiff"))
    ]
    return Problem(
        leaves,
        1,
        _per_leaf(g64, L),
        r_man("manual"),
        np.array([delta_J]),
        entry_groups,
        direction_run,
        jvp_groups,
        None if g_keep is None else _per_leaf(g_keep, L),
        bound,
        "J",
    )
