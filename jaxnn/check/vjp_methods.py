"""The finite-difference and jvp methods of ``check_vjp``: ⟨c, f⟩ over the primals as one flat vector.

Leaves up to ``max_entries`` entries are perturbed entry by entry, larger ones
along random unit directions; all in float64, in batched (``jax.vmap``)
evaluations. Noise bounds as in ``jaxnn.check.perturb``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.compare import Block, summarise
from jaxnn.check.options import first_line
from jaxnn.check.perturb import direction_differences, entry_differences, fd_noise, unit_directions
from jaxnn.core.compat import enable_x64


def squeeze(a, K):
    """``a`` itself for several cotangents (axis 0), ``a[0]`` for one.

    Args:
      a: the stacked array.
      K: the number of cotangents.

    >>> squeeze(np.ones((1, 2)), 1).shape
    (2,)
    """
    return a if K > 1 else a[0]


def flat_fn(fn, primals, cots, out_def):
    """(x, φ, offsets, C): the primals as one flat float64 vector, φ(x, C) = (⟨c_k, fn(x)⟩)_k, leaf offsets.

    The cotangents C are an argument of φ (not captured), so one compiled φ serves
    every check of the same function and shapes. Call it with x64 on (float64).

    Args:
      fn: the function of the primals.
      primals: the tuple of primal pytrees.
      cots: the cotangents, [k][output leaf] NumPy arrays.
      out_def: fn's output tree structure.

    >>> with jax.enable_x64(True):
    ...     x, phi, off, C = flat_fn(jnp.sin, (np.zeros(2),), [[np.ones(2)]], jax.tree.structure(0))
    >>> off.tolist()
    [0, 2]
    """
    leaves, treedef = jax.tree.flatten(
        jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), primals)
    )
    sizes = [int(np.size(a)) for a in leaves]
    shapes = [a.shape for a in leaves]
    x = jnp.concatenate([a.ravel() for a in leaves])
    C = [[jnp.asarray(c, jnp.float64) for c in ck] for ck in cots]

    def phi(flat, C):
        parts, start = [], 0
        for size, shape in zip(sizes, shapes):
            parts.append(flat[start : start + size].reshape(shape))
            start += size
        y = jax.tree.leaves(fn(*jax.tree.unflatten(treedef, parts)))
        return jnp.stack([sum(jnp.sum(c * v) for c, v in zip(ck, y)) for ck in C])

    offsets = np.cumsum([0, *sizes])
    return x, phi, offsets, C


def fd_result(
    f,
    primals,
    names,
    shapes,
    cots,
    out_def,
    g64,
    r_rule,
    delta_phi,
    eps,
    K,
    threshold,
    max_entries,
    n_directions,
    rng,
    n_worst,
    maybe_jit,
):
    """The finite-difference ``MethodResult``: ⟨c_k, f⟩ at x ± ε, x ± 2ε (float64) vs the rule's ⟨c_k, ·⟩.

    Args:
      f: the function.
      primals: the tuple of primal pytrees.
      names: the primal leaves' names.
      shapes: their shapes.
      cots: the cotangents, [k][output leaf].
      out_def: f's output tree structure.
      g64: the rule's results in float64, [k][leaf].
      r_rule: the rule's rounding estimates, [k][leaf] -> (native, float64).
      delta_phi: δφ per cotangent (K,).
      eps: ε.
      K: the number of cotangents.
      threshold: rtol.
      max_entries: largest leaf perturbed entry by entry.
      n_directions: directions per larger leaf.
      rng: the NumPy generator of the directions.
      n_worst: worst entries to keep.
      maybe_jit: ``maybe_jit(fn, name)``: ``fn`` compiled (and kept for checks of the same
        function and shapes under ``name``) or ``fn`` itself.

    Returns:
      The ``MethodResult``.
    """
    blocks, by_entry, by_dir = [], [], []
    with enable_x64(True):
        x, phi, off, C = flat_fn(f, primals, cots, out_def)
        xh = np.asarray(x)
        at_entry = lambda x, C, j, h: phi(x.at[j].add(h), C)  # noqa: E731
        run_e = maybe_jit(jax.vmap(at_entry, in_axes=(None, None, 0, 0)), "fd")
        run_de = maybe_jit(jax.vmap(lambda x, C, d: phi(x + d, C), in_axes=(None, None, 0)), "fd_dir")
        run = lambda js, ss: run_e(x, C, js, ss * eps)  # noqa: E731
        run_d = lambda d: run_de(x, C, d)  # noqa: E731
        small = [i for i, s in enumerate(shapes) if int(np.prod(s)) <= max_entries]
        if small:
            idx = np.concatenate([np.arange(off[i], off[i + 1]) for i in small])
            D1, D2, _ = entry_differences(
                lambda js, ss: (run(js, ss), jnp.zeros(js.shape, bool)), xh, idx, eps
            )
        start = 0
        for i, name in enumerate(names):
            manual = np.stack([g64[k][i].ravel() for k in range(K)])  # (K, n)
            r64 = np.stack([r_rule[k][i][1].ravel() for k in range(K)])
            if i in small:
                n = manual.shape[1]
                d1, d2 = D1[start : start + n].T, D2[start : start + n].T  # (K, n)
                start += n
                noise = fd_noise(d1, d2, delta_phi[:, None], eps, r64)
                shape = (K, *shapes[i]) if K > 1 else shapes[i]
                blocks.append(
                    Block(
                        name,
                        "entry",
                        manual.reshape(shape),
                        d1.reshape(shape),
                        noise.reshape(shape),
                        np.ones(shape, bool),
                        cotangents=K > 1,
                    )
                )
                by_entry.append(name)
            else:
                V = unit_directions(rng, n_directions, (manual.shape[1],))
                full = np.zeros((n_directions, xh.size))
                full[:, off[i] : off[i + 1]] = V
                d1, d2, _ = direction_differences(
                    lambda d: (run_d(d), jnp.zeros(d.shape[0], bool)), full, eps
                )
                d1, d2 = d1.T, d2.T  # (K, n_directions)
                noise = fd_noise(d1, d2, delta_phi[:, None], eps, r64 @ np.abs(V).T)
                sq = (lambda a: a) if K > 1 else (lambda a: a[0])
                blocks.append(
                    Block(
                        name,
                        "direction",
                        sq(manual @ V.T),
                        sq(d1),
                        sq(noise),
                        np.ones(sq(d1).shape, bool),
                        cotangents=K > 1,
                    )
                )
                by_dir.append(name)
    parts = []
    if by_entry:
        parts.append(f"central differences of ⟨c, f⟩ in float64, every entry of {', '.join(by_entry)}")
    if by_dir:
        parts.append(f"{n_directions} random unit directions v in each of {', '.join(by_dir)}")
    parts.append(
        f"noise: |D_2ε - D_ε| + δφ/ε (δφ = {float(np.max(delta_phi)):.1e}) + the float64 rule's rounding"
    )
    return summarise("finite_difference", "float64", blocks, threshold, "; ".join(parts), n_worst)


def jvp_result(
    reference,
    primals,
    names,
    shapes,
    cots,
    out_def,
    g64,
    r_rule,
    r_ref,
    K,
    threshold,
    n_directions,
    rng,
    n_worst,
    maybe_jit,
):
    """The jvp ``MethodResult``: ⟨c_k, J v⟩ by ``jax.jvp(reference)`` vs ⟨rule(c_k), v⟩, float64.

    Args:
      reference: the plain implementation.
      primals: the tuple of primal pytrees.
      names: the primal leaves' names.
      shapes: their shapes.
      cots: the cotangents, [k][output leaf].
      out_def: f's output tree structure.
      g64: the rule's results in float64, [k][leaf].
      r_rule: the rule's rounding estimates, [k][leaf] -> (native, float64).
      r_ref: the reference VJP's rounding estimates, [k][leaf].
      K: the number of cotangents.
      threshold: rtol.
      n_directions: directions per leaf.
      rng: the NumPy generator of the directions.
      n_worst: worst entries to keep.
      maybe_jit: ``maybe_jit(fn, name)``: ``fn`` compiled (and kept for checks of the same
        function and shapes under ``name``) or ``fn`` itself.

    Returns:
      The ``MethodResult`` (skipped, with a note, when forward mode cannot differentiate reference).
    """
    strategy = (
        f"jax.jvp(reference) along {n_directions} random unit directions v per leaf: ⟨c, J v⟩ vs "
        "⟨rule(c), v⟩, float64; noise: ||rounding|| of both sides"
    )
    blocks = []
    with enable_x64(True):
        x, phi, off, C = flat_fn(reference, primals, cots, out_def)
        try:
            along = lambda x, C, t: jax.jvp(lambda z: phi(z, C), (x,), (t,))[1]  # noqa: E731
            run_t = maybe_jit(jax.vmap(along, in_axes=(None, None, 0)), "jvp")
            run = lambda T: run_t(x, C, T)  # noqa: E731
            T = np.zeros((n_directions * len(names), x.size))
            Vs = []
            for i in range(len(names)):
                V = unit_directions(rng, n_directions, (int(off[i + 1] - off[i]),))
                T[i * n_directions : (i + 1) * n_directions, off[i] : off[i + 1]] = V
                Vs.append(V)
            ref = np.asarray(run(jnp.asarray(T)), np.float64)  # (rows, K)
        except TypeError as e:  # forward mode refuses custom_vjp functions
            return summarise(
                "jvp",
                "float64",
                [],
                threshold,
                strategy,
                n_worst,
                note=f"skipped: jax.jvp cannot differentiate reference ({first_line(e)}).",
            )
    for i, name in enumerate(names):
        manual = np.stack([g64[k][i].ravel() for k in range(K)]) @ Vs[i].T  # (K, n_directions)
        refi = ref[i * n_directions : (i + 1) * n_directions].T
        bound = np.array([np.linalg.norm(r_rule[k][i][1]) + np.linalg.norm(r_ref[k][i][1]) for k in range(K)])
        noise = np.broadcast_to(bound[:, None], manual.shape)
        sq = (lambda a: a) if K > 1 else (lambda a: a[0])
        blocks.append(
            Block(
                name,
                "direction",
                sq(manual),
                sq(refi),
                sq(noise),
                np.ones(sq(manual).shape, bool),
                cotangents=K > 1,
            )
        )
    return summarise("jvp", "float64", blocks, threshold, strategy, n_worst)
