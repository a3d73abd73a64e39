"""``check_vjp``'s ``Problem`` for the engine: ⟨c, f⟩ over the primals as one flat float64 vector.

φ_k(x) = ⟨c_k, f(x)⟩ for each cotangent c_k; every leaf up to ``max_entries``
entries is perturbed entry by entry in one batched (``jax.vmap``) group, larger
ones along random unit directions, and the jvp runs ``jax.jvp`` of the
reference. The comparisons themselves are ``jaxnn.check.engine``'s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.engine import Leaf, Problem
from jaxnn.core.compat import enable_x64


def flat_fn(fn, primals, cots, out_def):
    """(x, φ, offsets, C): the primals as one flat float64 vector, φ(x, C) = C y(x), leaf offsets.

    C is ``cotangent_matrix(cots)`` (K, outputs) and y(x) fn's outputs as one flat vector, so
    φ_k = ⟨c_k, fn(x)⟩.

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
    leaves, treedef = jax.tree.flatten(primals)
    sizes = [int(np.size(a)) for a in leaves]
    shapes = [np.shape(a) for a in leaves]
    # host-side flattening: no eager JAX op (each would compile once per new shape)
    x = np.concatenate([np.asarray(a, np.float64).ravel() for a in leaves])
    C = cotangent_matrix(cots)

    def phi(flat, C):
        parts, start = [], 0
        for size, shape in zip(sizes, shapes):
            parts.append(flat[start : start + size].reshape(shape))
            start += size
        y = jax.tree.leaves(fn(*jax.tree.unflatten(treedef, parts)))
        # one matrix-vector product, however many output leaves and cotangents
        return C @ jnp.concatenate([jnp.ravel(v) for v in y]).astype(C.dtype)

    offsets = np.cumsum([0, *sizes])
    return x, phi, offsets, C


def cotangent_matrix(cots) -> np.ndarray:
    """The cotangents [k][output leaf] as one (K, outputs) float64 matrix, leaves flattened in order.

    Args:
      cots: the cotangents, [k][output leaf] NumPy arrays.

    >>> cotangent_matrix([[np.ones(2), np.zeros(())]]).tolist()
    [[1.0, 1.0, 0.0]]
    """
    return np.stack([np.concatenate([np.ravel(np.asarray(c, np.float64)) for c in ck]) for ck in cots])


def per_leaf(t, K: int, j: int | None = None) -> list[np.ndarray]:
    """[k][leaf] (or [k][leaf][j]) arrays -> one (K, size) float64 array per leaf.

    Args:
      t: the nested lists, cotangent first.
      K: the number of cotangents.
      j: an index into each entry (the rounding pairs (native, float64)), or None.

    >>> per_leaf([[np.ones(2)], [np.zeros(2)]], 2)[0].tolist()
    [[1.0, 1.0], [0.0, 0.0]]
    """
    return [
        np.stack([np.ravel(np.asarray(t[k][i] if j is None else t[k][i][j], np.float64)) for k in range(K)])
        for i in range(len(t[0]))
    ]


def vjp_problem(
    f, reference, primals, names, cots, out_def, g64, r_rule, r_ref, delta_phi, maybe_jit
) -> Problem:
    """The ``Problem`` of a ``check_vjp`` / ``check_grad`` check.

    Args:
      f: the function.
      reference: the plain implementation, or None (then no jvp).
      primals: the tuple of primal pytrees.
      names: the primal leaves' names.
      cots: the cotangents, [k][output leaf] NumPy arrays.
      out_def: f's output tree structure.
      g64: the rule's results in float64, [k][leaf].
      r_rule: the rule's rounding, [k][leaf] -> (native, float64).
      r_ref: the reference VJP's rounding, [k][leaf] -> (native, float64), or None.
      delta_phi: (K,) the rounding of one evaluation of ⟨c_k, f⟩.
      maybe_jit: ``maybe_jit(fn, name)``: ``fn`` compiled (and kept for checks of the same
        function and shapes under ``name``) or ``fn`` itself.

    Returns:
      The ``Problem``.
    """
    K = len(cots)
    shapes = [tuple(np.shape(a)) for a in jax.tree.leaves(primals)]
    leaves = tuple(Leaf(n, s) for n, s in zip(names, shapes))
    x, phi, off, C = flat_fn(f, primals, cots, out_def)

    def entry_groups(ids):
        idx = np.concatenate([np.arange(off[i], off[i + 1]) for i in ids])
        at = maybe_jit(
            jax.vmap(lambda x, C, j, h: phi(jnp.asarray(x).at[j].add(h), C), in_axes=(None, None, 0, 0)), "fd"
        )

        def run(js, ss):
            with enable_x64(True):
                vals = at(x, C, idx[js], ss)  # host arrays: the program converts them (float64)
            return np.asarray(vals), np.zeros(len(js), bool)

        return [(list(ids), x[idx], run)]

    at_dir = maybe_jit(
        jax.vmap(lambda x, C, d: phi(jnp.asarray(x) + d, C), in_axes=(None, None, 0)), "fd_dir"
    )

    def direction_run(i):
        def run(D):
            full = np.zeros((D.shape[0], x.size))
            full[:, off[i] : off[i + 1]] = D
            with enable_x64(True):
                return np.asarray(at_dir(x, C, full)), np.zeros(len(D), bool)

        return run

    jvp_groups, bound = None, None
    if reference is not None:
        _, phi_ref, _, _ = flat_fn(reference, primals, cots, out_def)

        def jvp_groups():
            def run(T):
                with enable_x64(True):
                    along = lambda x, C, t: jax.jvp(lambda z: phi_ref(z, C), (x,), (t,))[1]  # noqa: E731
                    run_t = maybe_jit(jax.vmap(along, in_axes=(None, None, 0)), "jvp")
                    return np.asarray(run_t(jnp.asarray(x), C, jnp.asarray(T)))

            return [(list(range(len(leaves))), run)]

        bound = [
            np.array([np.linalg.norm(r_rule[k][i][1]) + np.linalg.norm(r_ref[k][i][1]) for k in range(K)])
            for i in range(len(leaves))
        ]
    return Problem(
        leaves,
        K,
        per_leaf(g64, K),
        per_leaf(r_rule, K, 1),
        np.asarray(delta_phi, np.float64),
        entry_groups,
        direction_run,
        jvp_groups,
        None,
        bound,
        "⟨c, f⟩",
    )
