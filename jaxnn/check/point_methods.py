"""The comparison engine of ``check_activation`` and ``check_loss`` (column-wise functions on a grid).

A column-wise function maps (n, m) inputs to per-column outputs: an
activation g(Z) (column j of A depends on column j of Z only), or a loss
(one value per example). The derivative under test, ``manual(X, dA)``, is a
VJP with cotangent dA; it is compared with ``autodiff(X, dA)``, with central
differences of φ = ⟨dA, value(X)⟩ per column (per entry for an elementwise
g), and with ``jax.jvp`` of ``value``, on the inputs where the function and
its autodiff derivative are finite. Noise bounds as in ``jaxnn.check.perturb``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.compare import normwise
from jaxnn.check.function_report import FunctionReport, PointMethod, PointReport
from jaxnn.check.options import unit_roundoff
from jaxnn.check.perturb import U64, fd_noise, partner_dtype, rounding_estimate
from jaxnn.core.compat import enable_x64


def has_custom_vjp(fn, x) -> bool:
    """True when ``fn(x)`` runs a ``jax.custom_vjp`` function (then ``jax.vjp(fn)`` runs its rule).

    Args:
      fn: the function.
      x: an example input.

    >>> has_custom_vjp(jnp.tanh, jnp.ones(2))
    False
    """
    try:
        text = str(jax.make_jaxpr(fn)(x))
    except Exception:  # noqa: BLE001 - then we cannot tell; the other methods still run
        return False
    return "custom_vjp_call" in text


def row_differences(phi, X: np.ndarray, eps: float, elementwise: bool):
    """Central differences at ε and 2ε of a column-wise φ: (n, m) -> (n, m) entrywise or (m,) per column.

    Row j of every column is perturbed at once (columns are independent); an
    elementwise φ needs a single perturbation of everything.

    Args:
      phi: the function, float64.
      X: the point (n, m), float64.
      eps: ε.
      elementwise: whether φ acts entry by entry.

    Returns:
      ``(D_ε, D_2ε)``, each (n, m): the derivative of column j's φ along its row i.

    >>> D1, _ = row_differences(lambda x: jnp.sum(x ** 2, axis=0), np.ones((2, 1)), 1e-4, False)
    >>> np.round(D1, 2).tolist()
    [[2.0], [2.0]]
    """
    n = X.shape[0]
    rows = (
        [np.ones_like(X)] if elementwise else [np.outer(np.eye(n)[i], np.ones(X.shape[1])) for i in range(n)]
    )
    E = np.stack(rows)  # (r, n, m)
    out = []
    for h in (1.0, 2.0):
        plus, minus = X[None] + h * eps * E, X[None] - h * eps * E
        vals = jax.vmap(phi)(jnp.asarray(np.concatenate([plus, minus])))
        vals = np.asarray(vals, np.float64)
        vp, vm = vals[: len(rows)], vals[len(rows) :]
        with np.errstate(all="ignore"):
            step = (plus - minus).sum(axis=1) if not elementwise else (plus - minus)[0]
            if elementwise:
                D = (vp[0] - vm[0]) / step
            else:  # vals (r, m): column j's φ; the step of row i is step[i] (an (r, m) array)
                D = (vp - vm) / step
        out.append(D)
    return out[0], out[1]


def _normwise(a, b, noise, mask):
    return normwise(a[mask], b[mask], noise[mask])


def _column(x) -> str:
    return np.array2string(np.asarray(x), precision=10, max_line_width=200)


def compare_points(
    kind,
    name,
    X,
    dA,
    dtype,
    methods,
    thresholds,
    eps,
    grid,
    manual,
    autodiff,
    value,
    *,
    elementwise,
    custom_vjp,
    per_column_value=False,
    kinks=(),
) -> FunctionReport:
    """Run every method on the grid and build the ``FunctionReport`` (see the module docstring).

    Args:
      kind: ``"activation"`` or ``"loss"``.
      name: the function's name.
      X: the inputs (n, m), float64.
      dA: the cotangent (n, m) (ones for a loss).
      dtype: the check's dtype.
      methods: the methods to run.
      thresholds: ``{method: rtol}``.
      eps: ε.
      grid: the text describing the inputs.
      manual: ``manual(X, dA) -> (n, m)``, the derivative under test.
      autodiff: ``autodiff(X, dA) -> (n, m)``.
      value: ``value(X)``: g(X) (n, m), or the per-example losses (m,).
      elementwise: g acts entry by entry.
      custom_vjp: ``value`` runs a custom_vjp op (autodiff is then its own rule).
      per_column_value: ``value`` returns (m,) (a loss).
      kinks: points where g is not differentiable; finite differences whose ±2ε step
        comes within 4x of one are left out (as in ``check_gradients``).

    Returns:
      The ``FunctionReport``.

    >>> rep = compare_points("activation", "tanh", np.zeros((1, 1)), np.ones((1, 1)), "float64",
    ...     ("autodiff",), {"autodiff": 1e-10}, 1e-6, "z = 0", lambda z, d: d * (1 - jnp.tanh(z) ** 2),
    ...     lambda z, d: jax.vjp(jnp.tanh, z)[1](d)[0], jnp.tanh, elementwise=True, custom_vjp=False)
    >>> rep.passed
    True
    """
    partner = partner_dtype(dtype)
    low = dtype if partner == "float64" else "float32"
    res = {}
    for dt in (dtype, partner):
        with enable_x64(True):
            Xj = jnp.asarray(X, dt)
            # dA in the dtype g(Z) really has (a NumPy float64 constant inside g widens float32)
            dAj = jnp.asarray(dA, jax.eval_shape(value, Xj).dtype)
            res[dt] = [np.asarray(fn(Xj, dAj), np.float64) for fn in (manual, autodiff)]
            res[dt].append(np.asarray(value(Xj), np.float64))
    m_nat, a_nat, v_nat = res[dtype]
    r_a = rounding_estimate(a_nat, res[partner][1], dtype)
    m64, v64 = res["float64"][0], res["float64"][2]
    # the derivative under test is never recomputed to estimate its own rounding (a bug in one
    # branch would widen its own bound): jax's rounding stands for it, plus its output's rounding
    with np.errstate(all="ignore"):
        r_m = tuple(
            r + u * np.where(np.isfinite(g), np.abs(g), 0.0)
            for r, u, g in ((r_a[0], unit_roundoff(dtype), m_nat), (r_a[1], U64, m64))
        )
    if per_column_value:
        ok = np.isfinite(v_nat) & np.all(np.isfinite(a_nat), axis=0)
        valid = np.broadcast_to(ok, X.shape)
    elif elementwise:
        valid = np.isfinite(v_nat) & np.isfinite(a_nat)
    else:
        valid = np.broadcast_to(np.all(np.isfinite(v_nat) & np.isfinite(a_nat), axis=0), X.shape)
    n_points = int(ok.sum()) if per_column_value else int(valid.sum())
    n_skipped = (ok.size if per_column_value else valid.size) - n_points

    def phi_of(v, d):  # φ per entry (elementwise) or per column, broadcast to (n, m)
        if per_column_value:
            return np.broadcast_to(v, X.shape)
        return d * v if elementwise else np.broadcast_to(np.sum(d * v, axis=0), X.shape)

    with np.errstate(all="ignore"):
        phi64 = phi_of(v64, dA)
        phi_abs = phi_of(np.abs(v64), np.abs(dA))
        gap = np.abs(phi_of(res[low][2], dA) - phi64) * (U64 / unit_roundoff(low))
        delta_phi = np.maximum(U64 * phi_abs, np.where(np.isfinite(gap), gap, 0.0))

    results = []
    for method in methods:
        note = ""
        if method == "autodiff":
            a, b, noise, dt = m_nat, a_nat, r_m[0] + r_a[0], dtype
            ref_name = "jax.vjp" if kind == "activation" else "jax.grad"
            strategy = f"backward vs {ref_name} of forward in {dtype}"
            if custom_vjp:
                note = (
                    "; forward is a jax.custom_vjp op, so this runs its own rule: not an independent "
                    "reference (finite differences are)"
                )
            mask = valid
        elif method == "finite_difference":

            def phi(x):
                v = value(x)
                if per_column_value:
                    return v
                d = jnp.asarray(dA, jnp.float64)
                return d * v if elementwise else jnp.sum(d * v, axis=0)

            with enable_x64(True):
                D1, D2 = row_differences(phi, X, eps, elementwise)
            a, b, dt = m64, D1, "float64"
            noise = fd_noise(D1, D2, delta_phi, eps, r_m[1])
            mask = valid & np.isfinite(D1) & np.isfinite(D2)
            near = np.zeros(X.shape, bool)
            for k in kinks:
                near |= np.abs(X - k) < 4 * 2 * eps
            if not elementwise:
                near = np.broadcast_to(near.any(axis=0), X.shape)
            mask = mask & ~near
            if near.any():
                note = f"; {int(near.sum())} inputs within 8ε of a kink left out"
            strategy = f"central differences in float64 (eps = {eps:g}); noise |D_2ε - D_ε| + δφ/ε + rounding"
        else:
            T = np.random.default_rng(1).standard_normal(X.shape)
            try:
                with enable_x64(True):
                    Jt = np.asarray(jax.jvp(value, (jnp.asarray(X),), (jnp.asarray(T),))[1], np.float64)
            except TypeError as e:  # forward mode refuses custom_vjp functions
                results.append(
                    PointMethod(
                        "jvp",
                        float("nan"),
                        0.0,
                        thresholds[method],
                        "skipped",
                        None,
                        f"skipped: jax.jvp cannot differentiate forward ({str(e)[:80]})",
                    )
                )
                continue
            dt = "float64"
            if per_column_value:
                a, b = np.broadcast_to(np.sum(m64 * T, axis=0), X.shape), np.broadcast_to(Jt, X.shape)
            elif elementwise:
                a, b = m64 * T, dA * Jt
            else:
                a, b = (np.broadcast_to(np.sum(x, axis=0), X.shape) for x in (m64 * T, dA * Jt))
            bound = np.abs(T) * (r_m[1] + r_a[1])
            noise = bound if elementwise else np.broadcast_to(np.sum(bound, axis=0), X.shape)
            mask = valid & np.isfinite(b)
            strategy = "⟨backward(dA), t⟩ vs ⟨dA, J t⟩ by jax.jvp, random t, float64"
        results.append(
            _method(
                kind,
                method,
                X,
                dA,
                a,
                b,
                noise,
                mask,
                thresholds[method],
                strategy + note,
                elementwise,
                per_column_value,
                dt,
            )
        )
    decisive = next((r for r in results if r.status == "FAIL"), results[0])
    return FunctionReport(
        kind,
        name,
        dtype,
        decisive.error,
        decisive.threshold,
        n_points,
        n_skipped,
        decisive.worst,
        decisive.strategy,
        decisive.noise,
        grid,
        tuple(results),
    )


def _method(kind, method, X, dA, a, b, noise, mask, threshold, strategy, elementwise, per_column, dt):
    ref = {
        "autodiff": "jax.vjp" if kind == "activation" else "jax.grad",
        "finite_difference": "finite differences",
        "jvp": "jax.jvp",
    }[method]
    if not mask.any():
        return PointMethod(method, float("nan"), 0.0, threshold, "skipped", None, strategy)
    if per_column:  # a loss: each example on its own scale
        cols = [j for j in range(X.shape[1]) if mask[:, j].all()]
        stats = [_normwise(a[:, j], b[:, j], noise[:, j], np.ones(X.shape[0], bool)) for j in cols]
        excess = [np.inf if e != e else e - threshold - s for e, s in stats]
        k = int(np.argmax(excess))
        (error, nz), j = stats[k], cols[k]
        failed = excess[k] > 0
        worst = PointReport(
            f"example {j}: AL[:, {j}] = {_column(X[:, j])}",
            f"dL/dA = {_column(a[:, j])}",
            f"dL/dA = {_column(b[:, j])} ({ref})",
        )
    else:
        error, nz = _normwise(a, b, noise, mask)
        failed = not error <= threshold + nz
        with np.errstate(all="ignore"):
            d = np.where(mask, np.abs(a - b), -1.0)
        d = np.where(np.isnan(d), np.inf, d)
        i, j = np.unravel_index(int(np.argmax(d)), d.shape)
        if elementwise:
            scale = float(dA[i, j]) if method != "jvp" else 1.0
            with np.errstate(all="ignore"):
                gm, gr = float(a[i, j] / scale), float(b[i, j] / scale)
            label = "g'(z)" if method != "jvp" else "g'(z) t"
            worst = PointReport(f"z = {float(X[i, j])!r}", f"{label} = {gm!r}", f"{label} = {gr!r} ({ref})")
        else:
            worst = PointReport(
                f"column {j} of Z: {_column(X[:, j])}",
                f"dZ = {_column(a[:, j])}",
                f"dZ = {_column(b[:, j])} ({ref})",
            )
    if error != error:
        failed = True
    return PointMethod(
        method, error, nz, threshold, "FAIL" if failed else "pass", worst, strategy
    )
