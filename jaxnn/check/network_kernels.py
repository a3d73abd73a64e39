"""The computations behind ``check_gradients``, as pure functions of arrays (jitted or not).

Each takes arrays first and hashable configuration last (net, l2, keep_prob,
backward, group, eps, margin), so ``jax.jit`` with those static caches one
program per network, dtype and shape; ``check_gradients(jit=False)`` runs them
op by op instead. Also the kink bookkeeping: a finite difference across a
kink measures neither one-sided derivative, so a perturbation is flagged
when some pre-activation Z lies closer to a kink than ``margin`` times the
distance the step moved it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.options import FAST_COMPILE, PARAM_NAMES
from jaxnn.core.activations import ACTIVATIONS
from jaxnn.core.backward import backward as manual_backward
from jaxnn.core.backward import value_and_autodiff_grad
from jaxnn.core.forward import cost, cost_from_cache, forward, per_example_loss


def _k_both(params, X, Y, key, net, l2, keep_prob, backward):
    """(J, Z^[1..L], gradient under test, jax.grad gradient) in the dtype of the inputs."""
    _, cache = forward(params, X, net, key=key, keep_prob=keep_prob)
    J = cost_from_cache(params, cache, Y, net, l2=l2)
    if backward is None:
        gm = manual_backward(params, cache, Y, net, l2=l2)
    else:
        gm = backward(params, cache, Y, net)
    _, ga = value_and_autodiff_grad(params, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)
    return J, [c["Z"] for c in cache], gm, ga


def _cost_and_kink(params, X, Y, key, Z0, net, l2, keep_prob, margin):
    _, cache = forward(params, X, net, key=key, keep_prob=keep_prob)
    J = cost_from_cache(params, cache, Y, net, l2=l2)
    return J, near_kink(cache, Z0, net.layer_activations, margin)


def _k_fd_entries(params, X, Y, key, Z0, js, hs, net, l2, keep_prob, group, margin):
    """J(θ + h_i e_{j_i}) and its kink flag, for a batch of (j, h) over the group's entries."""
    f = lambda p: _cost_and_kink(p, X, Y, key, Z0, net, l2, keep_prob, margin)  # noqa: E731
    flat, g = group_fn(params, group, f)
    return jax.vmap(lambda j, h: g(flat.at[j].add(h)))(js, hs)


def _k_fd_deltas(params, X, Y, key, Z0, D, net, l2, keep_prob, group, margin):
    """J(θ + δ_i) and its kink flag, for a batch of steps δ_i over the group's entries."""
    f = lambda p: _cost_and_kink(p, X, Y, key, Z0, net, l2, keep_prob, margin)  # noqa: E731
    flat, g = group_fn(params, group, f)
    return jax.vmap(lambda d: g(flat + d))(D)


def _k_jvp(params, X, Y, key, T, net, l2, keep_prob, group):
    """jax.jvp of the cost along each row of T (tangents over the group's entries)."""
    f = lambda p: cost(p, X, Y, net, l2=l2, key=key, keep_prob=keep_prob)  # noqa: E731
    flat, g = group_fn(params, group, f)
    return jax.vmap(lambda t: jax.jvp(g, (flat,), (t,))[1])(T)


def _k_terms(params, X, Y, key, net, l2, keep_prob):
    """Per entry, mean_i |∂L^(i)/∂θ - ∂J/∂θ| + |∂J/∂θ| >= mean_i |∂L^(i)/∂θ|: the size of the terms.

    ∂²J/∂θ∂w_i at w = 1 (J weighted by per-example weights w, formulas §3) is
    (∂L^(i)/∂θ - ∂J/∂θ)/m with the same dropout masks as J; forward over
    reverse mode, one tangent per example. A sum of terms this size cannot be
    computed to better than about u times it: the rounding floor of a
    converged gradient, where the terms cancel (conventions §3).
    """
    m = X.shape[1]

    def grad_w(w):
        return jax.grad(lambda p: cost(p, X, Y, net, l2=l2, key=key, keep_prob=keep_prob, w=w))(params)

    ones = jnp.ones((m,), X.dtype)
    g, push = jax.linearize(grad_w, ones)
    spread = jax.vmap(push)(jnp.eye(m, dtype=X.dtype))  # leaves (m, *shape)
    return jax.tree.map(lambda d, g: jnp.sum(jnp.abs(d), axis=0) + jnp.abs(g), spread, g)


def _k_representable(params, X, Y, key, S, net, l2, keep_prob):
    """How much jax.grad moves when every Z^[l] and A^[l] is off by one unit roundoff: (draws, ...).

    Rounding makes every intermediate value relatively off by up to u; a
    gradient cannot be known better than the effect of that (a tanh exactly
    ±1, a softmax exactly one-hot, 1 - A² of a saturated unit). Linearised:
    forward over reverse mode along Z ⊙ (1 + u s_Z), A ⊙ (1 + u s_A) with random
    signs s (rows of S, per layer (s_Z, s_A)), here with u = 1 (the caller scales).
    """
    masks = [None] * net.L
    if keep_prob < 1:
        _, cache = forward(params, X, net, key=key, keep_prob=keep_prob)
        masks = [c.get("D") for c in cache]

    def J(p, d):
        A = X
        for l, (q, g) in enumerate(zip(p, net.layer_activations)):
            Z = (q["W"] @ A + q["b"]) * (1 + d[l][0])
            A = g.forward(Z) * (1 + d[l][1])
            A = A if masks[l] is None else A * masks[l]
        J = jnp.mean(per_example_loss([{"Z": Z, "A": A}], Y, net))
        return J + (l2 / (2 * X.shape[1])) * sum(jnp.sum(q["W"] ** 2) for q in p)

    zero = jax.tree.map(lambda a: jnp.zeros(a.shape[1:], a.dtype), S)
    grad_d = lambda d: jax.grad(J)(params, d)  # noqa: E731
    return jax.vmap(lambda s: jax.jvp(grad_d, (zero,), (s,))[1])(S)


def _k_floors(params, X, Y, key, S, net, l2, keep_prob, terms):
    """``(_k_terms or None, _k_representable)`` in one program (one compilation per network)."""
    t = _k_terms(params, X, Y, key, net, l2, keep_prob) if terms else None
    return t, _k_representable(params, X, Y, key, S, net, l2, keep_prob)


def _k_both_and_floors(params, X, Y, key, S, net, l2, keep_prob, backward, terms):
    """``(_k_both, _k_floors)`` at one point in one program: one compilation fewer per network.

    The float64 check needs both at the same params and data (``check_gradients``
    recomputes the floors on the kept examples only where a custom kink drops one).
    """
    return (_k_both(params, X, Y, key, net, l2, keep_prob, backward),
            _k_floors(params, X, Y, key, S, net, l2, keep_prob, terms))


_KERNELS = {
    "both_and_floors": (_k_both_and_floors, ("net", "l2", "keep_prob", "backward", "terms")),
    "floors": (_k_floors, ("net", "l2", "keep_prob", "terms")),
    "both": (_k_both, ("net", "l2", "keep_prob", "backward")),
    "fd_entries": (_k_fd_entries, ("net", "l2", "keep_prob", "group", "margin")),
    "fd_deltas": (_k_fd_deltas, ("net", "l2", "keep_prob", "group", "margin")),
    "jvp": (_k_jvp, ("net", "l2", "keep_prob", "group")),
}
_JITTED = {name: jax.jit(f, static_argnames=static) for name, (f, static) in _KERNELS.items()}
# XLA's backend optimisation level 0 for the float64 computations (finite differences, jvp, floors, the
# float64 gradients): a check's programs run once or a few times on small arrays, so compiling them fast
# matters more than running them fast. The caller's-dtype run keeps the default level: its rounding is
# what the check measures, and level 0 (no fused multiply-adds) would make it coarser than in training.
_FAST = {name: jax.jit(f, static_argnames=static, **FAST_COMPILE) for name, (f, static) in _KERNELS.items()}


def kernel(name: str, jit: bool, fast: bool = True):
    """The computation ``name`` (``"both"``, ``"both_and_floors"``, ``"floors"``, ...), jitted or not.

    Args:
      name: which computation.
      jit: the compiled version (one program per network and shape) or the eager one.
      fast: compiled at XLA's backend optimisation level 0 (float64 computations), else the default.

    >>> callable(kernel("both", False))
    True
    """
    if not jit:
        return _KERNELS[name][0]
    return _FAST[name] if fast else _JITTED[name]


def groups(p64, max_entries: int) -> list[tuple[tuple[int, str], ...]]:
    """Leaves evaluated together in one batched pass: ``[((l, "W"), (l, "b"), ...), ...]``.

    A small network (at most ``max_entries`` parameters) is one group: one
    vmapped evaluation perturbs everything, few dispatches. A larger one goes
    leaf by leaf, so each batched pass re-evaluates only the layers from the
    perturbed leaf on (``jax.vmap`` batches only what depends on it).

    Args:
      p64: the params ``[{"W", "b"}]``.
      max_entries: the largest network perturbed in one group.

    >>> groups([{"W": np.ones((2, 2)), "b": np.ones((2, 1))}], 10)
    [((0, 'W'), (0, 'b'))]
    """
    leaves = tuple((l, name) for l in range(len(p64)) for name in PARAM_NAMES)
    if sum(p64[l][name].size for l, name in leaves) <= max_entries:
        return [leaves]
    return [(leaf,) for leaf in leaves]


def group_fn(params, group, fn):
    """``(flat, f)``: the group's leaves concatenated into one flat vector, and ``fn(params)`` of it.

    Args:
      params: the params ``[{"W", "b"}]``.
      group: ``((l, "W"), ...)`` with l the 0-based list index.
      fn: a function of params.

    >>> params = [{"W": jnp.ones((1, 1)), "b": jnp.zeros((1, 1))}]
    >>> flat, f = group_fn(params, ((0, "W"),), lambda p: p[0]["W"])
    >>> f(flat + 1).tolist()
    [[2.0]]
    """
    shapes = [params[l][name].shape for l, name in group]
    sizes = [math.prod(s) for s in shapes]
    flat = jnp.concatenate([params[l][name].reshape(-1) for l, name in group])

    def f(new_flat):
        p, start = list(params), 0
        for (l, name), shape, size in zip(group, shapes, sizes):
            p[l] = dict(p[l], **{name: new_flat[start : start + size].reshape(shape)})
            start += size
        return fn(p)

    return flat, f


def near_kink(cache, Z0, acts, margin):
    """True when a pre-activation is within ``margin`` x (how far this step moved it) of a kink.

    Args:
      cache: the perturbed forward pass's cache.
      Z0: the unperturbed Z^[1..L].
      acts: the layers' ``Activation``s.
      margin: the safety factor (>= 1).

    >>> bool(near_kink([{"Z": jnp.array([1e-6])}], [jnp.array([0.0])], [jaxnn.get_activation("relu")], 4.0))
    True
    """
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

    Args:
      Z0: Z^[1..L], each (n_l, m).
      acts: the layers' ``Activation``s.

    >>> custom_kink_examples([np.zeros((1, 2))], [jaxnn.get_activation("relu")]).tolist()
    [False, False]
    """
    hit = np.zeros(np.shape(Z0[0])[1], bool)
    for z0, g in zip(Z0, acts):
        if g.kinks and ACTIVATIONS.get(g.name) is not g:
            z = np.asarray(z0)
            for k in g.kinks:
                hit |= np.any(z == k, axis=0)
    return hit
