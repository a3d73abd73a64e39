"""The points of an input search (``jaxnn.check.search``): domains parsed, points drawn.

A point is a list with one entry per leaf of the primals: a NumPy array of the
template leaf's shape and dtype where the search varies it, None where the
template's value is kept (positions in ``static_argnums``, non-float leaves).
Keeping shapes and dtypes fixed is what lets every check after the first reuse
the checker's compiled programs.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

# decades of |x| visited below the largest |bound|: 10^k_top down to 10^(k_top - 7)
N_DECADES = 8


def leaf_template(primals: tuple, static: tuple[int, ...]) -> list:
    """Per primal leaf: ``(shape, dtype)`` of a float leaf the search varies, else None (kept as is).

    Args:
      primals: the template, a tuple of pytrees.
      static: the positions in ``static_argnums`` (never varied).

    >>> leaf_template((jnp.zeros((2, 3)), 3), (1,))
    [((2, 3), dtype('float32')), None]
    """
    out = []
    for i, p in enumerate(primals):
        for x in jax.tree.leaves(p):
            dt = jnp.asarray(x).dtype if i not in static else None
            out.append(
                (tuple(jnp.shape(x)), dt) if dt is not None and jnp.issubdtype(dt, jnp.floating) else None
            )
    return out


def parse_bounds(who: str, domain, primals: tuple, template: list) -> list:
    """One ``(lo, hi)`` per searched leaf (None elsewhere), validated.

    Args:
      who: the front end's name, for messages.
      domain: ``(lo, hi)`` for every leaf, or a tuple with one pair or pytree of pairs per
        primal (None at a static position).
      primals: the template.
      template: ``leaf_template(primals, static)``.

    Raises:
      ValueError: a domain of another structure, a bound that is not finite, lo >= hi, or no
        float leaf to search; the message names the leaf and the fix.

    >>> p = ({"W": jnp.zeros(2), "b": jnp.zeros(1)},)
    >>> parse_bounds("search_vjp", ({"W": (-1, 1), "b": (0, 5)},), p, leaf_template(p, ()))
    [(-1.0, 1.0), (0.0, 5.0)]
    """
    fix = (
        "Fix: domain=(lo, hi) for every leaf, a tuple with one (lo, hi) or pytree of pairs per "
        "primal, or a sampler domain(rng) -> primals."
    )
    if _is_pair(domain):
        per_leaf = [domain] * len(template)
    else:
        if not isinstance(domain, tuple | list) or len(domain) != len(primals):
            raise ValueError(
                f"{who}: domain = {domain!r} is neither a pair (lo, hi) nor one entry per primal "
                f"({len(primals)} here). {fix}"
            )
        per_leaf = []
        for p, t in zip(primals, domain):
            n = len(jax.tree.leaves(p))
            if t is None or _is_pair(t):
                per_leaf += [t] * n
                continue
            try:
                per_leaf += jax.tree.structure(p).flatten_up_to(t)
            except (ValueError, TypeError) as e:
                raise ValueError(
                    f"{who}: domain entry {t!r} does not match its primal's structure "
                    f"{jax.tree.structure(p)}: {e}. {fix}"
                ) from None
    names = [n for n, _ in named_leaves(primals, ())]
    out = []
    for name, t, b in zip(names, template, per_leaf):
        if t is None:
            out.append(None)
            continue
        if not _is_pair(b):
            raise ValueError(f"{who}: domain gives {b!r} for {name}; expected a pair (lo, hi). {fix}")
        lo, hi = float(b[0]), float(b[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(
                f"{who}: domain for {name} is ({lo}, {hi}); bounds must be finite with lo < hi "
                "(e.g. (-50.0, 50.0))."
            )
        out.append((lo, hi))
    if all(b is None for b in out):
        raise ValueError(f"{who}: primals hold no float leaf to search (every one static or an integer).")
    return out


def _is_pair(t) -> bool:
    return (
        isinstance(t, tuple | list)
        and len(t) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in t)
    )


def describe_bounds(bounds: list) -> str:
    """The bounds in words: ``"[lo, hi]"`` when every leaf has the same, else ``"per-leaf bounds"``.

    Args:
      bounds: ``parse_bounds``' list.

    >>> describe_bounds([(-50.0, 50.0), None, (-50.0, 50.0)])
    '[-50, 50]'
    """
    pairs = {b for b in bounds if b is not None}
    return "[{:g}, {:g}]".format(*pairs.pop()) if len(pairs) == 1 else "per-leaf bounds"


def _decades(lo, hi):
    """The (sign, a, b) magnitude ranges: each decade of |x| the bounds allow, largest first."""
    top = max(abs(lo), abs(hi))
    k_top = math.floor(math.log10(top))
    out = []
    for k in range(k_top, k_top - N_DECADES, -1):
        for sign, m_lo, m_hi in ((1, max(lo, 0.0), hi), (-1, max(-hi, 0.0), -lo)):
            a, b = max(10.0**k, m_lo), min(10.0 ** (k + 1), m_hi)
            if m_hi > 0 and a <= b:
                out.append((sign, a, b))
    return out


def _fill(rng, shape, lo, hi, regime, decade=None):
    if regime == "lo":
        return np.full(shape, lo)
    if regime == "hi":
        return np.full(shape, hi)
    if regime == "uniform":
        return rng.uniform(lo, hi, shape)
    if regime == "edge":
        w = 1e-3 * (hi - lo) * rng.uniform(0, 1, shape)
        return np.where(rng.uniform(size=shape) < 0.5, lo + w, hi - w)
    sign, a, b = decade
    signs = sign if regime == "decade" else rng.choice([-1.0, 1.0], shape)
    return np.clip(signs * np.exp(rng.uniform(math.log(a), math.log(b), shape)), lo, hi)


def planned_points(template: list, bounds: list, seed: int):
    """The points of a bounded domain, endlessly: extremes, one point per decade and sign, then random.

    Each point is a list of leaves (a NumPy array of the template's shape and dtype, None where
    the template's value is kept); every entry of a leaf is drawn in the same regime (module
    docstring of ``jaxnn.check.search``).

    Args:
      template: ``leaf_template(primals, static)``.
      bounds: ``parse_bounds``' list.
      seed: seed of the random draws.

    >>> points = planned_points([((3,), np.dtype("float64"))], [(-50.0, 50.0)], 0)
    >>> lo, hi, top = (next(points)[0] for _ in range(3))
    >>> lo.tolist(), hi.tolist(), bool(np.all((10 <= top) & (top <= 50)))  # then the top decade, [10, 50]
    ([-50.0, -50.0, -50.0], [50.0, 50.0, 50.0], True)
    """
    rng = np.random.default_rng([seed, 0])
    decades = [None if b is None else _decades(*b) for b in bounds]
    n_fixed = 2 + max(len(d) for d in decades if d is not None)
    i = 0
    while True:
        if i < n_fixed:
            regime = ("lo", "hi")[i] if i < 2 else "decade"
        else:
            regime = rng.choice(["uniform", "decade", "mixed", "edge"], p=[0.3, 0.3, 0.25, 0.15])
        leaves = []
        for t, b, d in zip(template, bounds, decades):
            if t is None:
                leaves.append(None)
                continue
            dec = d[(i - 2) % len(d)] if regime == "decade" and i < n_fixed else d[rng.integers(len(d))]
            leaves.append(np.asarray(_fill(rng, t[0], *b, regime, dec), t[1]))
        yield leaves
        i += 1


def sampled_points(who: str, sampler, primals: tuple, template: list, seed: int):
    """A sampler's points as leaves (see ``planned_points``), each checked against the template.

    Every point must keep the template's structure, shapes and dtypes, so the checker's
    compiled programs are reused.

    Args:
      who: the front end's name, for messages.
      sampler: ``sampler(rng) -> primals``, rng a ``numpy.random.Generator``.
      primals: the template.
      template: ``leaf_template(primals, static)``.
      seed: seed of the generator handed to the sampler.

    Raises:
      ValueError: a point of another structure, shape or dtype (naming the leaf).

    >>> sampler = lambda rng: (rng.uniform(-1, 1, 2).astype(np.float32),)
    >>> template = [((2,), np.dtype("float32"))]
    >>> leaves = next(sampled_points("search_vjp", sampler, (jnp.zeros(2),), template, 0))
    >>> leaves[0].shape, leaves[0].dtype
    ((2,), dtype('float32'))
    """
    rng = np.random.default_rng([seed, 0])
    names = [n for n, _ in named_leaves(primals, ())]
    while True:
        point = sampler(rng)
        if not isinstance(point, tuple | list) or len(point) != len(primals):
            raise ValueError(
                f"{who}: domain(rng) returned {type(point).__name__}; a sampler returns primals: a tuple "
                f"of {len(primals)} pytrees with the template's structure, shapes and dtypes."
            )
        point = tuple(point)
        if jax.tree.structure(point) != jax.tree.structure(primals):
            raise ValueError(
                f"{who}: domain(rng) returned structure {jax.tree.structure(point)}; the template "
                f"(primals) has {jax.tree.structure(primals)}: a sampler returns the same structure."
            )
        leaves = []
        for name, t, x in zip(names, template, jax.tree.leaves(point)):
            if t is None:
                leaves.append(None)
                continue
            x = np.asarray(x)
            if x.shape != t[0] or x.dtype != t[1]:
                raise ValueError(
                    f"{who}: domain(rng) returned {name} of shape {x.shape} and dtype {x.dtype}; the "
                    f"template has {t[0]} {t[1]}: every point keeps the template's shapes and dtypes "
                    "(cast with np.asarray(x, dtype)), so the compiled programs are reused."
                )
            leaves.append(x)
        yield leaves


def assemble(primals: tuple, leaves: list) -> tuple:
    """The template with its searched leaves replaced (None: the template's own value).

    Args:
      primals: the template.
      leaves: one entry per leaf of ``primals``: an array, or None.

    >>> assemble((jnp.zeros(2), 3), [np.ones(2), None])
    (Array([1., 1.], dtype=float32), 3)
    """
    old, treedef = jax.tree.flatten(primals)
    new = [o if x is None else jnp.asarray(x) for o, x in zip(old, leaves)]
    return tuple(jax.tree.unflatten(treedef, new))


def named_leaves(primals: tuple, static: tuple[int, ...]) -> list:
    """``(name, leaf)`` of every leaf outside the static positions, named as the checkers name them.

    Args:
      primals: a tuple of pytrees.
      static: positions to leave out.

    >>> [n for n, _ in named_leaves(({"W": 1.0}, 2.0), (1,))]
    ["primals[0]['W']"]
    """
    return [
        (f"primals{jax.tree_util.keystr(path)}", x)
        for path, x in jax.tree_util.tree_flatten_with_path(tuple(primals))[0]
        if path[0].idx not in static
    ]


def refine_step(best: list, bounds: list, i: int, refine_at: int, budget: int, rng) -> list:
    """A random step around the best point; its size shrinks from 0.5 to 1e-3 of each entry's size.

    Args:
      best: the best point's leaves.
      bounds: ``parse_bounds``' list (the step is clipped to them).
      i: the index of this point in the search.
      refine_at: the index of the first refinement point.
      budget: the number of points in all.
      rng: a ``numpy.random.Generator``.

    >>> step = refine_step([np.full(2, 10.0)], [(-50.0, 50.0)], 6, 6, 8, np.random.default_rng(0))
    >>> bool(np.all(np.abs(step[0] - 10.0) < 50.0))
    True
    """
    frac = (i - refine_at) / max(budget - refine_at - 1, 1)
    size = 0.5 * (1e-3 / 0.5) ** frac
    leaves = []
    for x, b in zip(best, bounds):
        if b is None:
            leaves.append(x)
            continue
        x64 = np.asarray(x, np.float64)
        scale = np.maximum(np.abs(x64), 1e-3 * (b[1] - b[0]))
        step = np.clip(x64 + size * scale * rng.standard_normal(x64.shape), *b)
        leaves.append(np.asarray(step, np.asarray(x).dtype))
    return leaves
