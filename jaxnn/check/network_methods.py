"""The three methods of ``check_gradients`` on a validated network problem (formulas §4; conventions §3).

``autodiff_result`` compares the gradient under test with ``jax.grad`` in the
caller's dtype; ``fd_result`` with central differences of J in float64 at ε
and 2ε (every entry of small leaves, random directions of large ones, kinks
excluded); ``jvp_result`` with ``jax.jvp`` of J along random directions. Each
builds one ``Block`` per leaf W^[l], b^[l] with its noise bound.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxnn.check.compare import Block, summarise
from jaxnn.check.network_kernels import group_fn, groups, kernel
from jaxnn.check.options import PARAM_NAMES
from jaxnn.check.perturb import (
    direction_differences,
    entry_differences,
    fd_noise,
    partner_dtype,
    unit_directions,
)
from jaxnn.core.compat import enable_x64


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
        self.p64, self.X64, self.Y64, self.key, self.Z0 = p64, X64, Y64, key, [jnp.asarray(z) for z in Z0]
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


def grad_blocks(manual, reference, noise, kind="entry", masks=None) -> list[Block]:
    """One ``Block`` per leaf W^[l], b^[l] from per-layer ``{"W", "b"}`` NumPy dicts.

    Args:
      manual: the gradient under test.
      reference: the method's.
      noise: the per-entry noise bounds.
      kind: ``"entry"`` or ``"direction"``.
      masks: which entries were compared (default all).

    >>> g = [{"W": np.ones((1, 1)), "b": np.ones((1, 1))}]
    >>> [b.name for b in grad_blocks(g, g, g)]
    ['W^[1]', 'b^[1]']
    """
    out = []
    for l in range(len(manual)):
        for k in PARAM_NAMES:
            mask = np.ones(manual[l][k].shape, bool) if masks is None else masks[l][k]
            out.append(
                Block(f"{k}^[{l + 1}]", kind, manual[l][k], reference[l][k], noise[l][k], mask, l + 1, k)
            )
    return out


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
    noise = [
        {k: rounding["manual"][l][k][0] + rounding["autodiff"][l][k][0] for k in PARAM_NAMES}
        for l in range(len(gm))
    ]
    return summarise(
        "autodiff", dtype, grad_blocks(gm, ga, noise), threshold, strategy, n_worst, n_dropped, note
    )


def fd_result(ctx, g64, r_manual, delta_J, threshold, fd_mode, max_entries, n_directions, margin):
    """The finite-difference ``MethodResult``: central differences of J in float64 at ε and 2ε.

    Args:
      ctx: the ``FDContext``.
      g64: the gradient under test in float64, per-layer dicts.
      r_manual: its rounding estimates, per-layer dicts of (r_native, r_64).
      delta_J: the estimated rounding error of one evaluation of J.
      threshold: rtol.
      fd_mode: ``"auto"``, ``"entries"`` or ``"directions"``.
      max_entries: largest leaf perturbed entry by entry in ``"auto"``.
      n_directions: directions per larger leaf.
      margin: the kink margin.
    """
    p64, eps = ctx.p64, ctx.eps
    rng = np.random.default_rng(ctx.seed)
    blocks, by_entry, by_dir = {}, [], []
    args = (p64, ctx.X64, ctx.Y64, ctx.key, ctx.Z0)
    with enable_x64(True):
        for group in groups(p64, max_entries):
            by_entries = tuple(
                (l, k)
                for l, k in group
                if fd_mode == "entries" or (fd_mode == "auto" and p64[l][k].size <= max_entries)
            )
            if by_entries:

                def run(js, ss, by_entries=by_entries):
                    J, flag = kernel("fd_entries", ctx.jit)(
                        *args, js, ss, group=by_entries, eps=eps, margin=float(margin), **ctx.cfg
                    )
                    return J[:, None], flag

                x = np.asarray(group_fn(p64, by_entries, lambda p: 0)[0])
                D1, D2, excl = entry_differences(run, x, np.arange(x.size), eps)
                start = 0
                for l, k in by_entries:
                    shape, size = p64[l][k].shape, p64[l][k].size
                    sl = slice(start, start + size)
                    noise = fd_noise(D1[sl, 0], D2[sl, 0], delta_J, eps, r_manual[l][k][1].ravel())
                    blocks[l, k] = Block(
                        f"{k}^[{l + 1}]",
                        "entry",
                        g64[l][k],
                        D1[sl, 0].reshape(shape),
                        noise.reshape(shape),
                        ~excl[sl].reshape(shape),
                        l + 1,
                        k,
                    )
                    by_entry.append(f"{k}^[{l + 1}]")
                    start += size
            for l, k in group:
                if (l, k) in blocks:
                    continue
                V = unit_directions(rng, n_directions, p64[l][k].shape).reshape(n_directions, -1)

                def run_d(D, leaf=((l, k),)):
                    J, flag = kernel("fd_deltas", ctx.jit)(
                        *args, D, group=leaf, margin=float(margin), **ctx.cfg
                    )
                    return J[:, None], flag

                D1, D2, excl = direction_differences(run_d, V, eps)
                noise = fd_noise(D1[:, 0], D2[:, 0], delta_J, eps, np.abs(V) @ r_manual[l][k][1].ravel())
                blocks[l, k] = Block(
                    f"{k}^[{l + 1}]", "direction", V @ g64[l][k].ravel(), D1[:, 0], noise, ~excl, l + 1, k
                )
                by_dir.append(f"{k}^[{l + 1}]")
    blocks = [blocks[l, k] for l in range(len(p64)) for k in PARAM_NAMES]
    excluded = int(sum((~b.mask).sum() for b in blocks))
    parts = []
    if by_entry:
        parts.append(f"central differences in float64, every entry of {', '.join(by_entry)}")
    if by_dir:
        parts.append(
            f"{n_directions} random unit directions v in each of {', '.join(by_dir)} "
            "(⟨g, v⟩ vs (J(θ+εv) - J(θ-εv))/2ε, float64)"
        )
    parts.append(
        "noise: |D_2ε - D_ε| (truncation) + δJ/ε (rounding of J, "
        f"δJ = {delta_J:.1e}) + the float64 gradient's rounding"
    )
    note = ""
    if excluded:
        note = (
            f"{excluded} finite differences excluded: a ±ε or ±2ε step would bring a pre-activation "
            f"within {margin:g}x its move of a kink."
        )
    return summarise(
        "finite_difference", "float64", blocks, threshold, "; ".join(parts), ctx.n_worst, excluded, note
    )


def jvp_result(ctx, g64, rounding, threshold, keep, n_directions, max_entries, cols):
    """The jvp ``MethodResult``: ``jax.jvp`` of J along random unit directions vs ⟨g, v⟩, float64.

    Args:
      ctx: the ``FDContext``.
      g64: the gradient under test in float64 on the kept examples.
      rounding: ``{"manual", "autodiff"}`` rounding estimates.
      threshold: rtol.
      keep: (m,) examples compared.
      n_directions: directions per leaf.
      max_entries: largest network evaluated in one group.
      cols: selects the kept columns of an (n, m) array.
    """
    m, n_dropped = keep.size, int((~keep).sum())
    strategy = (
        f"jax.jvp of jaxnn.cost along {n_directions} random unit directions v per leaf, vs ⟨g, v⟩, "
        "float64; noise: ||rounding|| of both sides' float64 gradients"
    )
    note = drop_note(n_dropped, m) if n_dropped else ""
    if not keep.any():
        return summarise("jvp", "float64", [], threshold, strategy, ctx.n_worst, n_dropped, note)
    rng = np.random.default_rng(ctx.seed + 1)
    blocks, p64 = {}, ctx.p64
    with enable_x64(True):
        X, Y = jnp.asarray(cols(np.asarray(ctx.X64))), jnp.asarray(cols(np.asarray(ctx.Y64)))
        for group in groups(p64, max_entries):
            sizes = [p64[l][k].size for l, k in group]
            # n_directions per leaf, each zero outside its own leaf; padded to a
            # power of two (>= 32) rows so shapes repeat across networks.
            D = len(group) * n_directions
            T = np.zeros((max(32, 1 << (D - 1).bit_length()), sum(sizes)))
            start = 0
            for i, size in enumerate(sizes):
                T[i * n_directions : (i + 1) * n_directions, start : start + size] = unit_directions(
                    rng, n_directions, (size,)
                )
                start += size
            ref = np.asarray(
                kernel("jvp", ctx.jit)(p64, X, Y, ctx.key, jnp.asarray(T), group=group, **ctx.cfg)
            )
            start = 0
            for i, ((l, k), size) in enumerate(zip(group, sizes)):
                rows = slice(i * n_directions, (i + 1) * n_directions)
                manual = T[rows, start : start + size] @ g64[l][k].ravel()
                bound = float(
                    np.linalg.norm(rounding["manual"][l][k][1])
                    + np.linalg.norm(rounding["autodiff"][l][k][1])
                )
                blocks[l, k] = Block(
                    f"{k}^[{l + 1}]",
                    "direction",
                    manual,
                    ref[rows][:n_directions],
                    np.full(n_directions, bound),
                    np.ones(n_directions, bool),
                    l + 1,
                    k,
                )
                start += size
    blocks = [blocks[l, k] for l in range(len(p64)) for k in PARAM_NAMES]
    return summarise("jvp", "float64", blocks, threshold, strategy, ctx.n_worst, n_dropped, note)
