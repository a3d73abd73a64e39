"""The data-parallel training step on a device mesh (formulas §4-§5 on many devices).

See ``jaxnn.devices.mesh`` for meshes and placement; this module builds the compiled step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn.core.network import Network
from jaxnn.core.validate import check_l2
from jaxnn.devices.mesh import batch_sharding, mesh_axis, n_devices, replicated, shard_batch
from jaxnn.train.step import settings, train_step

Array = jax.Array


class ShardedTrainStep(NamedTuple):
    """A data-parallel training step as two functions (like an optax transformation).

    init: ``params -> (params, opt_state)``, both placed on the mesh
      (replicated, or split along the ensemble axis).
    step: ``(params, opt_state, X, Y, w=None) -> (params, opt_state, J)``;
      X: (n_x, m), Y: (n_L, m) as from ``shard_batch`` (or
      ``shard_padded_batch`` with its mask w: (m,)); J is the cost before the
      update (shape (E,) for an ensemble).
    """

    init: Callable[[Any], tuple[Any, Any]]
    step: Callable[..., tuple[Any, Any, Array]]


def make_sharded_train_step(
    net: Network,
    optimizer: float | optax.GradientTransformation,
    mesh: Mesh,
    *,
    grad: str = "manual",
    l2: float = 0.0,
    ensemble: bool = False,
    compute_dtype=None,
) -> ShardedTrainStep:
    """The jitted data-parallel step: formulas §4 gradients then §5 / optax, on a mesh.

    Args:
      net: the ``Network``.
      optimizer: a learning rate α (formulas §5's gradient descent; opt_state
        is ``()``) or an ``optax.GradientTransformation``.
      mesh: a 1-D mesh (``make_mesh``).
      grad: ``"manual"`` (hand-derived, formulas §4) or ``"autodiff"`` (``jax.grad``).
      l2: weight decay λ.
      ensemble: params (and opt_state) carry a leading (E,) axis of stacked
        models (``jax.vmap``), split over the devices (E divisible by D); X and
        Y are then replicated (``replicate``) instead of split by columns.
      compute_dtype: e.g. ``jnp.bfloat16``: forward and backward in that dtype,
        params and optimizer state in theirs (``jaxnn.precision``).

    Returns:
      ``ShardedTrainStep(init, step)``. Params and opt_state come out with the
      sharding they went in with; XLA inserts the all-reduce of the gradient.

    >>> net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    >>> mesh = jaxnn.make_mesh()
    >>> D = len(jax.devices())
    >>> train = make_sharded_train_step(net, 0.5, mesh)
    >>> params, opt_state = train.init(jaxnn.init_params(jax.random.key(0), net))
    >>> X, Y = jaxnn.shard_batch(jnp.ones((2, 4 * D)), jnp.ones((1, 4 * D)), mesh)
    >>> params, opt_state, J = train.step(params, opt_state, X, Y)
    >>> J.shape, params[0]["W"].shape
    ((), (3, 2))
    """
    s = settings(net, optimizer, grad=grad, compute_dtype=compute_dtype)
    check_l2(l2)
    axis = mesh_axis(mesh)

    def one(params, opt_state, X, Y, w):
        out = train_step(params, opt_state, X, Y, s, l2=l2, w=w)
        return out.params, out.opt_state, out.J

    rep = replicated(mesh)
    if ensemble:
        one = jax.vmap(one, in_axes=(0, 0, None, None, None))
        state, data, mask, J_out = NamedSharding(mesh, P(axis)), rep, rep, NamedSharding(mesh, P(axis))
    else:
        state, data, mask, J_out = rep, batch_sharding(mesh), NamedSharding(mesh, P(axis)), rep
    plain_jit = jax.jit(lambda p, o, X, Y: one(p, o, X, Y, None),
                        in_shardings=(state, state, data, data), out_shardings=(state, state, J_out))
    masked_jit = jax.jit(one, in_shardings=(state, state, data, data, mask),
                         out_shardings=(state, state, J_out))

    def init(params):
        if ensemble:
            E = {int(np.shape(x)[0]) for x in jax.tree.leaves(params)}
            D = n_devices(mesh)
            if len(E) != 1 or next(iter(E)) % D:
                raise ValueError(
                    f"ensemble=True: every params leaf needs the same leading (E,) axis with E "
                    f"divisible by the {D} devices; got leading sizes {sorted(E)}."
                )
            opt_state = jax.vmap(s.tx.init)(params)
        else:
            opt_state = s.tx.init(params)
        return jax.device_put(params, state), jax.device_put(opt_state, state)

    def step(params, opt_state, X, Y, w=None):
        if w is None:
            if not ensemble and np.shape(X)[1] % n_devices(mesh):
                shard_batch(X, Y, mesh)  # raises the explanatory ValueError
            return plain_jit(params, opt_state, X, Y)
        return masked_jit(params, opt_state, X, Y, w)

    step.lower = lambda *args: (masked_jit if len(args) == 5 else plain_jit).lower(*args)
    return ShardedTrainStep(init, step)



__all__ = ["ShardedTrainStep", "make_sharded_train_step"]
