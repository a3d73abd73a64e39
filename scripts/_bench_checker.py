"""Benchmark section "checker": jaxnn.check_vjp vs jax.test_util.check_grads vs torch gradcheck.

Sixteen derivative rules nobody on this project wrote, from public code: jax.nn
(gelu, softplus, log_softmax), jax.scipy.special (logsumexp, log_ndtr, erf),
optax losses (softmax_cross_entropy, huber_loss, sigmoid_binary_cross_entropy,
log_cosh) and a projection (projection_l2_ball), a layer norm and an RMS norm
with hand-written custom_vjp backward passes, single-head attention, a 4x4
determinant (jnp.linalg.det's custom_jvp), and an implicit-function VJP
(jnp.linalg.solve). Everything in float64 (torch gradcheck's dtype).

* jaxnn: ``check_vjp(f, primals, reference=plain)``: f's own rule against a
  plain implementation and against finite differences (the defaults);
* jax: ``check_grads(f, primals, order=1, modes=("rev",))``;
* torch (when installed): ``torch.autograd.gradcheck`` of the same function
  written in torch (its own backward).

Each rule is checked ``repeats`` + 1 times by each tool, interleaved: the first
call (a new function: what a test suite pays per rule) and the median of the
others (the same function again). A process-wide warm-up runs first, so the
first call does not include JAX's or torch's start-up. Nothing is asserted.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from jaxnn.check import check_vjp
from jaxnn.core.compat import enable_x64

try:  # optional
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None


def _ln(x, g, b):
    mu = x.mean(-1, keepdims=True)
    s = jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    return g * (x - mu) / s + b


@jax.custom_vjp
def layer_norm(x, g, b):
    return _ln(x, g, b)


def _ln_fwd(x, g, b):
    return _ln(x, g, b), (x, g)


def _ln_bwd(res, c):
    x, g = res
    mu = x.mean(-1, keepdims=True)
    s = jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    xh, gh = (x - mu) / s, c * g
    dx = (gh - gh.mean(-1, keepdims=True) - xh * (gh * xh).mean(-1, keepdims=True)) / s
    return dx, (c * xh).sum(0, keepdims=True), c.sum(0, keepdims=True)


layer_norm.defvjp(_ln_fwd, _ln_bwd)


def _rms(x, g):
    return g * x / jnp.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)


@jax.custom_vjp
def rms_norm(x, g):
    return _rms(x, g)


def _rms_fwd(x, g):
    return _rms(x, g), (x, g)


def _rms_bwd(res, c):
    x, g = res
    r = 1 / jnp.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)
    gc = g * c
    dx = r * gc - x * r**3 * (gc * x).mean(-1, keepdims=True)
    return dx, (c * x * r).sum(0, keepdims=True)


rms_norm.defvjp(_rms_fwd, _rms_bwd)


def _attention(q, k, v):
    return jax.nn.softmax(q @ k.T / np.sqrt(q.shape[-1]), axis=-1) @ v


def _plain_attention(q, k, v):
    s = q @ k.T / np.sqrt(q.shape[-1])
    e = jnp.exp(s - jnp.max(s, axis=-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)) @ v


def _plain_det4(a):  # Laplace expansion along the first row: no custom rule
    def det3(m):
        return (
            m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1])
            - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
            + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0])
        )

    return sum(
        (-1) ** j * a[0, j] * det3(jnp.delete(a[1:], j, axis=1, assume_unique_indices=True)) for j in range(4)
    )


def _plain_solve(a, b):  # Cramer-free: Gaussian elimination without pivoting (a is well conditioned)
    n = a.shape[0]
    m = jnp.concatenate([a, b[:, None]], axis=1)
    for i in range(n):
        m = m.at[i].set(m[i] / m[i, i])
        m = m - jnp.outer(m[:, i].at[i].set(0.0), m[i])
    return m[:, -1]


def _plain_log_softmax(x):
    s = x - jnp.max(x, -1, keepdims=True)
    return s - jnp.log(jnp.sum(jnp.exp(s), -1, keepdims=True))


def rules(rng):
    """[(name, f, plain reference, primals (NumPy float64), torch function or None)]."""
    import optax

    x = rng.standard_normal((8, 16))
    labels = np.eye(16)[rng.integers(0, 16, 8)]
    targets = rng.standard_normal((8, 16))
    bits = (rng.uniform(size=(8, 16)) > 0.5).astype(np.float64)
    erf = jax.scipy.special.erf
    T = torch
    F = None if torch is None else torch.nn.functional
    out = [
        ("jax.nn.gelu", lambda x: jax.nn.gelu(x, approximate=False),
         lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))), (x,), F and (lambda x: F.gelu(x))),
        ("jax.nn.softplus", jax.nn.softplus, lambda x: jnp.log1p(jnp.exp(-jnp.abs(x))) + jnp.maximum(x, 0),
         (x,), F and F.softplus),
        ("jax.nn.log_softmax", lambda x: jax.nn.log_softmax(x, axis=-1),
         _plain_log_softmax, (x,), T and (lambda x: T.log_softmax(x, -1))),
        ("jax.scipy.special.logsumexp", lambda x: jax.scipy.special.logsumexp(x, axis=-1),
         lambda x: jnp.log(jnp.sum(jnp.exp(x), -1)), (x,), T and (lambda x: T.logsumexp(x, -1))),
        ("jax.scipy.special.log_ndtr", jax.scipy.special.log_ndtr,
         lambda x: jnp.log(0.5 * jax.scipy.special.erfc(-x / np.sqrt(2))), (np.linspace(-8, 4, 48),),
         T and T.special.log_ndtr),
        ("jax.scipy.special.erf", erf, lambda x: 1 - jax.scipy.special.erfc(x), (x,), T and T.erf),
        ("optax.softmax_cross_entropy", lambda z: optax.softmax_cross_entropy(z, labels),
         lambda z: -jnp.sum(labels * jax.nn.log_softmax(z, -1), -1), (x,),
         T and (lambda z: F.cross_entropy(z, T.as_tensor(labels), reduction="none"))),
        ("optax.huber_loss", lambda p: optax.huber_loss(p, targets),
         lambda p: jnp.where(jnp.abs(p - targets) < 1, 0.5 * (p - targets) ** 2, jnp.abs(p - targets) - 0.5),
         (x + 0.1,), T and (lambda p: F.huber_loss(p, T.as_tensor(targets), reduction="none"))),
        ("optax.sigmoid_binary_cross_entropy", lambda z: optax.sigmoid_binary_cross_entropy(z, bits),
         lambda z: -bits * jnp.log(jax.nn.sigmoid(z)) - (1 - bits) * jnp.log(1 - jax.nn.sigmoid(z)), (x,),
         T and (lambda z: F.binary_cross_entropy_with_logits(z, T.as_tensor(bits), reduction="none"))),
        ("optax.log_cosh", lambda p: optax.log_cosh(p, targets), lambda p: jnp.log(jnp.cosh(p - targets)),
         (x,), T and (lambda p: T.log(T.cosh(p - T.as_tensor(targets))))),
        ("optax.projections.projection_l2_ball", lambda v: optax.projections.projection_l2_ball(v, 2.0),
         lambda v: v * jnp.minimum(1.0, 2.0 / jnp.sqrt(jnp.sum(v**2))), (x[0],),
         T and (lambda v: v * T.clamp(2.0 / T.linalg.vector_norm(v), max=1.0))),
        ("layer norm (custom_vjp)", layer_norm, _ln,
         (x, rng.standard_normal((1, 16)), rng.standard_normal((1, 16))),
         F and (lambda x, g, b: F.layer_norm(x, (16,), g[0], b[0], eps=1e-5))),
        ("RMS norm (custom_vjp)", rms_norm, _rms, (x, rng.standard_normal((1, 16))),
         T and (lambda x, g: g * x / T.sqrt((x**2).mean(-1, keepdim=True) + 1e-6))),
        ("attention (softmax(QK^T/sqrt d) V)", _attention, _plain_attention,
         tuple(rng.standard_normal((6, 8)) for _ in range(3)),
         T and (lambda q, k, v: T.softmax(q @ k.T / np.sqrt(8), -1) @ v)),
        ("4x4 det (jnp.linalg.det)", jnp.linalg.det, _plain_det4,
         (rng.standard_normal((4, 4)) + 2 * np.eye(4),),
         T and T.linalg.det),
        ("implicit VJP (jnp.linalg.solve)", jnp.linalg.solve, _plain_solve,
         (rng.standard_normal((5, 5)) + 5 * np.eye(5), rng.standard_normal(5)),
         T and T.linalg.solve),
    ]
    return out


def _time(fn):
    t0 = time.perf_counter()
    ok = fn()
    return time.perf_counter() - t0, ok


def run_checker(repeats: int = 3, with_torch: bool = True):
    """Per rule ``{"name", "jaxnn": (first, median), "check_grads": ..., "gradcheck": ..., "passed"}``.

    Args:
      repeats: timed calls after the first, per rule and tool.
      with_torch: time torch gradcheck when torch is installed.
    """
    use_torch = with_torch and torch is not None
    rows = []
    with enable_x64(True):
        rng = np.random.default_rng(0)
        table = rules(rng)
        # process warm-up: one unrelated check by each tool
        w = (jnp.ones(3),)
        check_vjp(jnp.sin, w, reference=lambda x: jnp.sin(x))
        check_grads(jnp.sin, w, order=1, modes=("rev",))
        if use_torch:
            torch.autograd.gradcheck(torch.sin, (torch.ones(3, dtype=torch.float64, requires_grad=True),))
        for name, f, ref, primals, tfn in table:
            prim = tuple(jnp.asarray(p) for p in primals)

            def jaxnn_check(f=f, ref=ref, prim=prim):
                return check_vjp(f, prim, reference=ref).passed

            def jax_check(f=f, prim=prim):
                check_grads(f, prim, order=1, modes=("rev",))
                return True

            tools = {"jaxnn": jaxnn_check, "check_grads": jax_check}
            if use_torch and tfn is not None:

                def torch_check(tfn=tfn, primals=primals):
                    ts = tuple(torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in primals)
                    return bool(torch.autograd.gradcheck(tfn, ts))

                tools["gradcheck"] = torch_check
            times = {t: [] for t in tools}
            verdict = {}
            for r in range(repeats + 1):
                order = list(tools)
                order = order[r % len(order) :] + order[: r % len(order)] if r else order
                for t in order:
                    dt, ok = _time(tools[t])
                    times[t].append(dt)
                    verdict[t] = ok
            row = {"name": name, "passed": verdict}
            for t, ts in times.items():
                row[t] = (ts[0], statistics.median(ts[1:]) if len(ts) > 1 else ts[0])
            rows.append(row)
    return rows


def section_checker(b) -> str:
    """The checker section of scripts/benchmark.py: median s/check over the rules, per tool."""
    from _bench_core import table
    from _bench_timing import log

    log("checker: jaxnn.check_vjp vs jax.test_util.check_grads vs torch gradcheck")
    repeats = 1 if b.s.quick else 3
    rows = run_checker(repeats)
    tools = [t for t in ("jaxnn", "check_grads", "gradcheck") if any(t in r for r in rows)]
    for r in rows:
        b.record("checker", rule=r["name"], **{f"{t}_first_s": r[t][0] for t in tools if t in r},
                 **{f"{t}_repeat_s": r[t][1] for t in tools if t in r})
    body = []
    for r in rows:
        cells = [r["name"]]
        for t in tools:
            cells.append(f"{r[t][0]:.3f} / {r[t][1]:.3f}" if t in r else "n/a")
        cells.append("yes" if r["passed"].get("jaxnn") else "NO")
        body.append(cells)
    med = []
    for which, label in ((0, "median, first call"), (1, "median, repeat call")):
        cells = [f"**{label}**"]
        for t in tools:
            vals = [r[t][which] for r in rows if t in r]
            cells.append(f"**{statistics.median(vals):.3f}** (total {sum(vals):.2f})")
        cells.append("")
        med.append(cells)
    header = ["rule (float64)", *(f"{t} s/check (first / repeat)" for t in tools), "jaxnn passed"]
    note = "" if torch is not None else "\n\ntorch is not installed: no gradcheck column."
    det = next(r for r in rows if r["name"].startswith("4x4 det"))
    goal = (
        "Goal (issue 18): jaxnn's median no more than gradcheck's and no more than 3x check_grads'; "
        f"4x4 det under 0.3 s (here {det['jaxnn'][0]:.3f} s first call)."
    )
    return (
        "### checker: jaxnn.check_vjp vs jax.test_util.check_grads (rev) vs torch.autograd.gradcheck\n\n"
        + table(header, body + med) + "\n\n" + goal + note
    )


if __name__ == "__main__":  # a quick look without the whole benchmark
    for r in run_checker(2):
        print(r)
