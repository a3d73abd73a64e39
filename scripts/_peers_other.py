"""NumPy, Flax NNX, Equinox and PyTorch trainers of the benchmark MLP, for ``scripts/benchmark.py``.

Each ``make_*`` follows the contract of scripts/_peers.py (``run(steps)``
trains ``steps`` steps and returns once the work is finished). Flax NNX,
Equinox and PyTorch are imported inside their ``make_*`` only, so a missing
one raises ``ImportError`` there and the benchmark prints "not installed".
They use their own idiomatic row-major layout, x: (B, n_x) and integer labels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _peers import LEARNING_RATE, Batches, block

# --------------------------------------------------------------------------- NumPy


def make_numpy(sizes, data: Batches, seed: int = 0):
    """A hand-written NumPy loop: forward, the delta recursion, Adam; float32 throughout."""
    rng = np.random.default_rng(seed)
    Ws = [
        (rng.standard_normal((n_in, n_out), dtype=np.float32) * np.float32(np.sqrt(2.0 / n_in)))
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]
    bs = [np.zeros(n_out, np.float32) for n_out in sizes[1:]]
    params = Ws + bs
    mom = [np.zeros_like(p) for p in params]
    vel = [np.zeros_like(p) for p in params]
    b1, b2, eps = np.float32(0.9), np.float32(0.999), np.float32(1e-8)
    lr = np.float32(LEARNING_RATE)
    L = len(Ws)
    t = [0]
    eye = np.eye(sizes[-1], dtype=np.float32)

    def step(x, y):
        acts = [x]
        for l in range(L):
            z = acts[-1] @ Ws[l]
            z += bs[l]
            if l < L - 1:
                np.maximum(z, 0, out=z)
            acts.append(z)
        logits = acts[-1]
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        dZ = logits - eye[y]  # softmax + cross-entropy: dZ = A - Y
        dZ /= np.float32(x.shape[0])
        grads_W, grads_b = [None] * L, [None] * L
        for l in range(L - 1, -1, -1):
            grads_W[l] = acts[l].T @ dZ
            grads_b[l] = dZ.sum(axis=0)
            if l > 0:
                dA = dZ @ Ws[l].T
                dA *= acts[l] > 0
                dZ = dA
        t[0] += 1
        c1 = np.float32(1 - b1 ** t[0])
        c2 = np.float32(1 - b2 ** t[0])
        for p, g, m_, v_ in zip(params, grads_W + grads_b, mom, vel):
            m_ *= b1
            m_ += (1 - b1) * g
            v_ *= b2
            v_ += (1 - b2) * (g * g)
            p -= (lr / c1) * m_ / (np.sqrt(v_ / c2) + eps)

    def run(steps: int) -> None:
        for i in range(steps):
            step(data.x[i % data.nb], data.y[i % data.nb])

    return run


# --------------------------------------------------------------------------- peers


def make_flax_nnx(sizes, data: Batches, seed: int = 0):
    """Flax NNX: nnx.Linear layers, nnx.Optimizer(optax.adam), an ``@nnx.jit`` train step."""
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, sizes, rngs):
            self.layers = nnx.List(
                [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
            )

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = nnx.relu(layer(x))
            return self.layers[-1](x)

    model = MLP(sizes, nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(LEARNING_RATE), wrt=nnx.Param)
    xs = [jnp.asarray(x) for x in data.x]
    ys = [jnp.asarray(y) for y in data.y]

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    def run(steps: int) -> None:
        for i in range(steps):
            train_step(model, optimizer, xs[i % data.nb], ys[i % data.nb])
        block(nnx.state(model))

    return run


def make_equinox(sizes, data: Batches, seed: int = 0):
    """Equinox: eqx.nn.MLP, optax.adam, an ``@eqx.filter_jit`` step with filter_value_and_grad."""
    import equinox as eqx

    widths = set(sizes[1:-1])
    if len(widths) != 1:
        raise ValueError("eqx.nn.MLP needs equal hidden widths")
    model = eqx.nn.MLP(
        sizes[0], sizes[-1], widths.pop(), len(sizes) - 2, activation=jax.nn.relu,
        key=jax.random.key(seed),
    )
    optim = optax.adam(LEARNING_RATE)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    state = [model, opt_state]
    xs = [jnp.asarray(x) for x in data.x]
    ys = [jnp.asarray(y) for y in data.y]

    def loss_fn(model, x, y):
        logits = jax.vmap(model)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @eqx.filter_jit
    def make_step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    def run(steps: int) -> None:
        model, opt_state = state
        for i in range(steps):
            model, opt_state, _ = make_step(model, opt_state, xs[i % data.nb], ys[i % data.nb])
        block(eqx.filter(model, eqx.is_array))
        state[:] = [model, opt_state]

    return run


def make_torch(sizes, data: Batches, seed: int = 0):
    """PyTorch eager on the CPU: nn.Sequential, F.cross_entropy, torch.optim.Adam."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list = []
    for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        layers.append(nn.Linear(a, b))
        if l < len(sizes) - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    xs = [torch.from_numpy(np.ascontiguousarray(x)) for x in data.x]
    ys = [torch.from_numpy(y.astype(np.int64)) for y in data.y]

    def run(steps: int) -> None:
        for i in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(xs[i % data.nb]), ys[i % data.nb])
            loss.backward()
            opt.step()

    return run


def peer_versions() -> dict[str, str]:
    out = {}
    for name in ("flax", "equinox", "torch", "optax"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "not installed"
    return out


