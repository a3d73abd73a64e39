"""The same MLP trained by each framework's idiomatic loop, for ``scripts/benchmark.py``.

Every ``make_*`` function builds one implementation of the benchmark model
(ReLU hidden layers, softmax output, mean cross-entropy, Adam with lr 1e-3)
and returns ``run(steps) -> None``: train ``steps`` steps, cycling over the
pre-made batches, and return only once the work is finished (JAX:
``block_until_ready`` on the final params; NumPy and PyTorch eager are
synchronous). The benchmark times whole runs and divides by ``steps``: no loop
here blocks on each step, as none of these frameworks' idiomatic loops do.

This module holds the data, the raw-JAX and the jaxnn implementations;
scripts/_peers_other.py holds NumPy, Flax NNX, Equinox and PyTorch. Raw JAX
and the peers use their own idiomatic row-major layout, x: (B, n_x) and
integer labels; jaxnn uses the X: (n_x, m) and one-hot Y: (n_L, m). The
FLOPs are the same.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

LEARNING_RATE = 1e-3


class Batches(NamedTuple):
    """``nb`` pre-made batches in NumPy, row-major: x: (nb, B, n_x) float32, y: (nb, B) int32."""

    x: np.ndarray
    y: np.ndarray

    @property
    def nb(self) -> int:
        return self.x.shape[0]

    def onehot_columns(self, n_out: int) -> np.ndarray:
        """Y in the layout for every batch: (nb, n_L, B)."""
        return np.eye(n_out, dtype=np.float32)[self.y].transpose(0, 2, 1)


def make_batches(sizes: tuple[int, ...], batch: int, nb: int, seed: int = 0) -> Batches:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((nb, batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], size=(nb, batch), dtype=np.int32)
    return Batches(x, y)


def train_flops(sizes: tuple[int, ...], m: int) -> int:
    """Matmul FLOPs of one training step, counting 2*m*n_in*n_out per matmul.

    Forward: one matmul per layer (Z = W A_prev). Backward: two per layer
    (dW = dZ A_prev^T and dA_prev = W^T dZ) except layer 1, whose dA_prev = dX
    is never needed. Elementwise work (activations, softmax, Adam) is not counted.
    """
    flops = 0
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        per_matmul = 2 * m * n_in * n_out
        flops += per_matmul * (3 if l > 1 else 2)
    return flops


def block(tree) -> None:
    """Return once every array in ``tree`` is computed."""
    jax.block_until_ready(tree)


# --------------------------------------------------------------------------- raw JAX


def _raw_init(key, sizes):
    """params: [(W (n_in, n_out), b (n_out,))], He-normal like jaxnn's init."""
    params = []
    for k, n_in, n_out in zip(jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:]):
        W = jax.random.normal(k, (n_in, n_out), jnp.float32) * np.sqrt(2.0 / n_in)
        params.append((W, jnp.zeros((n_out,), jnp.float32)))
    return params


def _raw_loss(params, x, y):
    for W, b in params[:-1]:
        x = jax.nn.relu(x @ W + b)
    W, b = params[-1]
    logits = x @ W + b
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def make_raw_jax_step(sizes, data: Batches, seed: int = 0):
    """Raw JAX, one ``jax.jit`` call per step (params and Adam state donated)."""
    tx = optax.adam(LEARNING_RATE)
    params = _raw_init(jax.random.key(seed), sizes)
    state = [params, tx.init(params)]
    xs = [jnp.asarray(x) for x in data.x]
    ys = [jnp.asarray(y) for y in data.y]

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(_raw_loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def run(steps: int) -> None:
        params, opt_state = state
        for i in range(steps):
            params, opt_state, _ = step(params, opt_state, xs[i % data.nb], ys[i % data.nb])
        block(params)
        state[:] = [params, opt_state]

    return run


def make_raw_jax_scan(sizes, data: Batches, seed: int = 0):
    """Raw JAX, ``steps`` steps fused in one ``lax.scan`` program (carry donated)."""
    tx = optax.adam(LEARNING_RATE)
    params = _raw_init(jax.random.key(seed), sizes)
    state = [(params, tx.init(params))]
    xs, ys = jnp.asarray(data.x), jnp.asarray(data.y)
    nb = data.nb

    @partial(jax.jit, static_argnums=(3,), donate_argnums=(0,))
    def train(carry, xs, ys, steps):
        def body(carry, i):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(_raw_loss)(params, xs[i % nb], ys[i % nb])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.scan(body, carry, jnp.arange(steps))

    def run(steps: int) -> None:
        carry, _ = train(state[0], xs, ys, steps)
        block(carry)
        state[0] = carry

    return run


# --------------------------------------------------------------------------- jaxnn without fit


def jaxnn_network(sizes):
    import jaxnn

    L = len(sizes) - 1
    return jaxnn.Network(tuple(sizes), ("relu",) * (L - 1) + ("softmax",), "cross_entropy")


def _jaxnn_scan_program(net, tx, nb: int, grad: str):
    """``train(carry, Xs, Ys, steps)``: jaxnn's gradient + an optax update, in one lax.scan."""
    import jaxnn

    value_and_grad = {"manual": jaxnn.value_and_manual_grad,
                      "autodiff": jaxnn.value_and_autodiff_grad}[grad]

    def train(carry, Xs, Ys, steps):
        def body(carry, i):
            params, opt_state = carry
            J, grads = value_and_grad(params, Xs[i % nb], Ys[i % nb], net)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), J

        return jax.lax.scan(body, carry, jnp.arange(steps))

    return train


def make_jaxnn_scan(sizes, data: Batches, seed: int = 0, grad: str = "manual", tx=None):
    """jaxnn's value_and_{manual,autodiff}_grad + an optax update (default adam), in one lax.scan.

    No shuffling, no finiteness checks, no evaluation: the floor that ``fit`` is compared to.
    """
    import jaxnn

    net = jaxnn_network(sizes)
    tx = optax.adam(LEARNING_RATE) if tx is None else tx
    params = jaxnn.init_params(jax.random.key(seed), net)
    state = [(params, tx.init(params))]
    Xs = jnp.asarray(data.x.transpose(0, 2, 1))  # (nb, n_x, B)
    Ys = jnp.asarray(data.onehot_columns(sizes[-1]))  # (nb, n_L, B)
    train = jax.jit(
        _jaxnn_scan_program(net, tx, data.nb, grad), static_argnums=(3,), donate_argnums=(0,)
    )

    def run(steps: int) -> None:
        carry, _ = train(state[0], Xs, Ys, steps)
        block(carry)
        state[0] = carry

    return run


def make_jaxnn_ensemble_scan(sizes, data: Batches, n_models: int, seed: int = 0):
    """``n_models`` jaxnn models (one init seed each) trained by ``jax.vmap`` of the scan program."""
    import jaxnn

    net = jaxnn_network(sizes)
    tx = optax.adam(LEARNING_RATE)
    keys = jax.random.split(jax.random.key(seed), n_models)
    params = jax.vmap(lambda k: jaxnn.init_params(k, net))(keys)
    state = [(params, jax.vmap(tx.init)(params))]
    Xs = jnp.asarray(data.x.transpose(0, 2, 1))
    Ys = jnp.asarray(data.onehot_columns(sizes[-1]))
    program = _jaxnn_scan_program(net, tx, data.nb, "manual")

    @partial(jax.jit, static_argnums=(3,), donate_argnums=(0,))
    def train(carry, Xs, Ys, steps):
        return jax.vmap(program, in_axes=(0, None, None, None))(carry, Xs, Ys, steps)

    def run(steps: int) -> None:
        carry, _ = train(state[0], Xs, Ys, steps)
        block(carry)
        state[0] = carry

    return run


# --------------------------------------------------------------------------- jaxnn public loops


def make_jaxnn_train_step(sizes, data: Batches, seed: int = 0, grad: str = "manual",
                          learning_rate: float = 0.01):
    """``jaxnn.make_train_step(..., donate=True)`` (formulas §5 SGD) called once per step."""
    import jaxnn

    net = jaxnn_network(sizes)
    step = jaxnn.make_train_step(net, learning_rate, grad=grad, donate=True)
    state = [jaxnn.init_params(jax.random.key(seed), net)]
    Xs = [jnp.asarray(x.T) for x in data.x]
    Ys = [jnp.asarray(y) for y in data.onehot_columns(sizes[-1])]

    def run(steps: int) -> None:
        params = state[0]
        for i in range(steps):
            params, _ = step(params, Xs[i % data.nb], Ys[i % data.nb])
        block(params)
        state[0] = params

    return run


def _fit_data(sizes, data: Batches, steps: int, rest: int = 0):
    """(X: (n_x, steps*B + rest), Y: (n_L, same)) on device: ``steps`` full batches per epoch."""
    idx = np.arange(steps) % data.nb
    x = np.concatenate([data.x[idx].reshape(-1, sizes[0]), data.x[0, :rest]])
    y = np.concatenate([data.y[idx].reshape(-1), data.y[0, :rest]])
    return jnp.asarray(x.T), jnp.asarray(np.eye(sizes[-1], dtype=np.float32)[y].T)


def make_jaxnn_fit(sizes, data: Batches, seed: int = 0, n_models: int | None = None,
                   rest: int = 0, **fit_kwargs):
    """``jaxnn.fit`` (or ``jaxnn.fit_ensemble`` for ``n_models``), adam, one epoch per run.

    The data set has ``steps * B + rest`` examples, so one epoch is ``steps``
    updates of batch B (shuffled, as fit does; ``steps=1`` is a one-batch call),
    plus one of ``rest`` examples when ``rest`` > 0. Each run is one ``fit``
    call, set-up included: what a user pays.
    """
    import jaxnn

    net = jaxnn_network(sizes)
    batch = data.x.shape[1]
    if n_models is None:
        state = [jax.block_until_ready(jaxnn.init_params(jax.random.key(seed), net))]
    else:
        state = [jax.block_until_ready(jaxnn.init_ensemble(jax.random.key(seed), net, n_models))]
    cache: dict[int, tuple] = {}
    calls = [0]
    train = jaxnn.fit if n_models is None else jaxnn.fit_ensemble

    def run(steps: int) -> None:
        if steps not in cache:
            cache[steps] = jax.block_until_ready(_fit_data(sizes, data, steps, rest))
        calls[0] += 1
        params, _ = train(state[0], net, cache[steps], epochs=1, key=jax.random.key(calls[0]),
                          optimizer="adam", batch_size=batch, progress=False, **fit_kwargs)
        block(params)
        state[0] = params

    return run


def make_jaxnn_init_state(sizes, data: Batches, seed: int = 0):
    """``jaxnn.init_state(params, key, optimizer="adam")`` alone: the set-up part of a fit call."""
    import jaxnn

    net = jaxnn_network(sizes)
    params = jax.block_until_ready(jaxnn.init_params(jax.random.key(seed), net))

    def run(steps: int) -> None:
        for i in range(steps):
            block(jaxnn.init_state(params, jax.random.key(i), optimizer="adam"))

    return run
