"""The reference for ``jaxnn train`` (defaults) in plain JAX + optax: the same job, no jaxnn.

``scripts/benchmark.py`` times this whole process against ``python -m jaxnn train``.
The same job as the CLI's digits recipe (``jaxnn/cli/recipes.py``): scikit-learn's
digits (1797 images, 64 pixels), 20% held out, standardised with the training
statistics; 64-512-10, ReLU, softmax + mean cross-entropy, He-normal init,
inverted dropout keep 0.5 on the hidden layer, Adam lr 1e-3, batch 64, 30
epochs, a fresh shuffle each epoch and the m mod 64 leftover examples as one
more step, test cost and accuracy after every epoch. Idiomatic raw-JAX layout:
rows are examples, x: (m, 64), W: (n_in, n_out).

What it does not do that ``jaxnn train`` does: the gradient check before
training, checkpoints, history.json and curves.png (so no matplotlib).

Usage: ``python scripts/raw_jax_digits.py``.
"""

import time

T0 = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

SEED, EPOCHS, BATCH, HIDDEN, KEEP, LR, TEST_FRACTION = 0, 30, 64, 512, 0.5, 1e-3, 0.2

# Data: a seeded split, standardised with the training statistics (constant pixels: std 1).
digits = load_digits()
x_all, y_all = digits.data.astype(np.float32), digits.target.astype(np.int32)
rng = np.random.default_rng(SEED)
perm = rng.permutation(len(y_all))
n_test = round(len(y_all) * TEST_FRACTION)
test, train = perm[:n_test], perm[n_test:]
mean, std = x_all[train].mean(0), x_all[train].std(0)
std[std == 0] = 1.0
x_train, x_test = (x_all[train] - mean) / std, (x_all[test] - mean) / std
y_train, y_test = y_all[train], y_all[test]
m = len(y_train)


def init(key, sizes):
    params = []
    for k, n_in, n_out in zip(jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:]):
        params.append((jax.random.normal(k, (n_in, n_out)) * np.sqrt(2.0 / n_in),
                       jnp.zeros(n_out)))
    return params


def logits(params, x, key=None):
    (W1, b1), (W2, b2) = params
    h = jax.nn.relu(x @ W1 + b1)
    if key is not None:  # inverted dropout while training only
        h = h * jax.random.bernoulli(key, KEEP, h.shape) / KEEP
    return h @ W2 + b2


def loss(params, x, y, key=None):
    return optax.softmax_cross_entropy_with_integer_labels(logits(params, x, key), y).mean()


tx = optax.adam(LR)


@jax.jit
def epoch(params, opt_state, order, key, x, y, x_val, y_val):
    """One pass: full batches in a lax.scan, then the leftover as one step; then the test scores."""
    def step(carry, rows_and_key):
        params, opt_state = carry
        rows, k = rows_and_key
        J, grads = jax.value_and_grad(loss)(params, x[rows], y[rows], k)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), J * rows.shape[0]

    n_full = m // BATCH
    keys = jax.random.split(key, n_full + 1)
    carry, costs = jax.lax.scan(step, (params, opt_state),
                                (order[: n_full * BATCH].reshape(n_full, BATCH), keys[:-1]))
    total = costs.sum()
    if m % BATCH:
        carry, J_rest = step(carry, (order[n_full * BATCH:], keys[-1]))
        total = total + J_rest
    params, opt_state = carry
    z = logits(params, x_val)
    val_cost = optax.softmax_cross_entropy_with_integer_labels(z, y_val).mean()
    return params, opt_state, total / m, val_cost, (z.argmax(1) == y_val).mean()


key_init, key_train = jax.random.split(jax.random.key(SEED))
params = init(key_init, (64, HIDDEN, 10))
opt_state = tx.init(params)
data = [jnp.asarray(a) for a in (x_train, y_train, x_test, y_test)]
print(f"training 64-{HIDDEN}-10 relu on digits ({m} train / {n_test} test), adam lr {LR:g}, "
      f"batch {BATCH}, {EPOCHS} epochs")
print("| epoch | cost | test cost | test accuracy |\n|---|---|---|---|")
for e in range(EPOCHS):
    order = jnp.asarray(rng.permutation(m).astype(np.int32))
    params, opt_state, J, val_cost, val_acc = epoch(
        params, opt_state, order, jax.random.fold_in(key_train, e), *data)
    print(f"| {e + 1} | {float(J):.4f} | {float(val_cost):.4f} | {float(val_acc):.4f} |")
print(f"test accuracy {float(val_acc):.4f}; total {time.perf_counter() - T0:.1f} s")
