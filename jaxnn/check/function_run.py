"""How ``check_activation`` and ``check_loss`` run on the one engine and become a ``FunctionReport``.

The front ends (``jaxnn.check.functions``) choose the inputs; here the domain
is found (where the function and its autodiff derivative are finite), the
rule is checked by ``check_vjp`` (``jaxnn.check.engine``), and the engine's
``GradientReport`` is summarised per method as a ``PointMethod`` with the
worst input in words.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.check.function_report import FunctionReport, PointMethod, PointReport
from jaxnn.check.vjp import check_vjp
from jaxnn.core.compat import enable_x64

_ENGINE = {"autodiff": "reference", "finite_difference": "finite_difference", "jvp": "jvp"}


def column_text(x) -> str:
    """A column's values as one line of text.

    Args:
      x: the values.

    >>> column_text(np.array([1.0, 2.5]))
    '[1.  2.5]'
    """
    return np.array2string(np.asarray(x), precision=10, max_line_width=200)


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


def domain_mask(
    value, X: np.ndarray, dtype: str, per_entry: bool, value_per_column: bool = False
) -> np.ndarray:
    """Where the function and its autodiff derivative are finite, in the check's dtype: its domain.

    Args:
      value: the function, (n, m) -> (n, m), or (m,) per column (a loss).
      X: the inputs (n, m), float64.
      dtype: the check's dtype.
      per_entry: an elementwise function: (n, m) per entry; else (m,) per column.
      value_per_column: ``value`` returns one value per column (a loss).

    >>> domain_mask(jnp.log, np.array([[1.0, -1.0]]), "float64", per_entry=True).tolist()
    [[True, False]]
    """
    with enable_x64(True):
        Xj = jnp.asarray(X.astype(dtype))
        v, vjp = jax.vjp(value, Xj)
        d = np.asarray(vjp(jnp.ones_like(v))[0], np.float64)
        v = np.asarray(v, np.float64)
    if value_per_column:
        return np.isfinite(v) & np.all(np.isfinite(d), axis=0)
    ok = np.isfinite(v) & np.isfinite(d)
    return ok if per_entry else ok.all(axis=0)


def run_function_check(
    kind,
    name,
    dtype,
    methods,
    thr,
    eps,
    seed,
    grid,
    f,
    rule,
    primals,
    custom,
    n_points,
    n_skipped,
    where,
    exclude,
    cotangents,
) -> FunctionReport:
    """``check_vjp`` of the rule on the inputs (the one engine), as a ``FunctionReport``.

    Args:
      kind: ``"activation"`` or ``"loss"``.
      name: the function's name.
      dtype: the check's dtype.
      methods: the methods, as ``check_activation`` names them.
      thr: ``{method: rtol}``.
      eps: ε.
      seed: seed of the cotangents and directions.
      grid: the text describing the inputs.
      f: the function of the inputs.
      rule: ``rule(primals, cotangent)``, the hand-written derivative.
      primals: the inputs inside the domain, float64.
      custom: f runs a ``jax.custom_vjp`` op (its jax.vjp is its own rule).
      n_points: inputs compared.
      n_skipped: inputs outside the domain.
      where: ``where(entry)``: the input of a worst ``Entry``, in words.
      exclude: ``check_vjp``'s ``exclude`` (inputs at a kink), or None.
      cotangents: ``check_vjp``'s ``cotangents``.

    Returns:
      The ``FunctionReport``, with the engine's ``GradientReport`` as ``report``.

    >>> import jax.numpy as jnp
    >>> rep = run_function_check("activation", "tanh", "float64", ("autodiff",), {"autodiff": 1e-10}, 1e-6, 0,
    ...     "z = 0.5", jnp.tanh, lambda p, c: (c * (1 - jnp.tanh(p[0]) ** 2),), (np.full((1, 1), 0.5),),
    ...     False, 1, 0, lambda e: "z = 0.5", None, "basis")
    >>> rep.passed
    True
    """
    if n_points == 0:
        results = tuple(
            PointMethod(m, float("nan"), 0.0, thr[m], "skipped", None, "no input inside the domain")
            for m in methods
        )
        return FunctionReport(
            kind,
            name,
            dtype,
            float("nan"),
            thr[methods[0]],
            0,
            n_skipped,
            None,
            results[0].strategy,
            0.0,
            grid,
            results,
        )
    with enable_x64(dtype == "float64"):
        report = check_vjp(
            f,
            tuple(jnp.asarray(np.asarray(p).astype(dtype)) for p in primals),
            vjp=rule,
            reference=f,
            methods=tuple(_ENGINE[m] for m in methods),
            eps=eps,
            thresholds={_ENGINE[m]: thr[m] for m in methods},
            seed=seed,
            exclude=exclude,
            cotangents=cotangents,
            n_cotangents=1,
        )
    results = []
    for m in methods:
        r = report[_ENGINE[m]]
        worst = None
        if r.worst_entries:
            e = r.worst_entries[0]
            at = where(e)
            label = "g'(z)" if kind == "activation" else "dL/dA"
            worst = PointReport(at, f"{label} = {e.manual!r}", f"{label} = {e.reference!r} ({_REF[m]})")
        strategy = r.strategy + (f" {r.note}" if r.note else "")
        if m == "autodiff" and custom:
            strategy += (
                "; forward is a jax.custom_vjp op, so this runs its own rule: not an independent "
                "reference (finite differences are)"
            )
        results.append(
            PointMethod(m, r.error, r.noise, r.threshold, r.status.replace("pass", "pass"), worst, strategy)
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
        report,
    )


def _excess(error: float, noise: float, threshold: float) -> float:
    return float("inf") if error != error else error / (threshold + noise)


_REF = {"autodiff": "jax.vjp", "finite_difference": "finite differences", "jvp": "jax.jvp"}
