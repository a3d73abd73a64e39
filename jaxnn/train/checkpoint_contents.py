"""What a checkpoint holds and whether a file fits: the leaves of a ``TrainState`` or of bare
params, and the checks of a file's metadata against a ``Network`` (``jaxnn.train.checkpoint``
saves, restores and loads with them; ``jaxnn.train.checkpoint_format`` is the file itself).

A ``TrainState`` is saved as all its leaves (``.params[0]['W']``, ``.opt_state...``,
``.step``, ``.key`` as its uint32 key data, ``.epoch``); bare params (what ``fit`` returns)
as ``[0]['W']``, ``[0]['b']``, ... with epoch and step 0 and the key implementation
``PARAMS_ONLY``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.core.network import Network, check_params
from jaxnn.train.checkpoint_format import CheckpointError
from jaxnn.train.state import TrainState

PARAMS_ONLY = "none"  # the key_impl of a params-only file: it holds no PRNG key (nor state)


def flatten_state(state: TrainState):
    """(paths, arrays, treedef) with the typed key replaced by its uint32 key data."""
    if not isinstance(state, TrainState):
        raise ValueError(f"expected a jaxnn.TrainState, got {type(state).__name__}.")
    plain = state._replace(key=jax.random.key_data(state.key))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(plain)
    return [jax.tree_util.keystr(p) for p, _ in leaves], [x for _, x in leaves], treedef


def to_host(name: str, x) -> np.ndarray:
    """One leaf as a NumPy array; across processes this process must hold all of it."""
    try:
        return np.asarray(x)
    except RuntimeError:  # jax: a global array whose shards live on other processes
        if getattr(x, "is_fully_addressable", True):
            raise
        raise CheckpointError(
            f"cannot save leaf {name}: it is split across processes (sharding "
            f"{getattr(x, 'sharding', '?')}), not fully replicated, so this process does not "
            "hold all of it. Replicate the state on every device before saving (e.g. "
            "jax.device_put(x, NamedSharding(mesh, PartitionSpec()))).") from None


def check_matches(meta: dict, path: Path, net: Network, paths, leaves, impl: str) -> None:
    """Refuse a checkpoint saved for another Network, state structure or PRNG implementation."""
    ours = net.describe()
    diff = [f"{k}: file {meta['network'].get(k)} vs network {ours[k]}" for k in ours
            if meta["network"].get(k) != ours[k]]
    if diff:
        raise CheckpointError(f"{path} was saved for another Network: " + "; ".join(diff) + ".")
    need = {p: (list(np.shape(x)), str(x.dtype)) for p, x in zip(paths, leaves, strict=True)}
    have = {d["path"]: (d["shape"], d["dtype"]) for d in meta["leaves"]}
    if list(need.items()) != [(d["path"], have[d["path"]]) for d in meta["leaves"]]:
        diff = [f"missing in file: {p}" for p in need if p not in have]
        diff += [f"not expected: {p}" for p in have if p not in need]
        diff += [f"{p}: file {tuple(have[p][0])} {have[p][1]} vs expected "
                 f"{tuple(need[p][0])} {need[p][1]}"
                 for p in need if p in have and have[p] != need[p]]
        diff = diff or ["the leaves are in another order"]
        raise CheckpointError(f"{path} does not match the expected state (is the optimizer "
                              "or ensemble size the same?): " + "; ".join(diff[:6])
                              + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "") + ".")
    if meta["key_impl"] != impl:
        raise CheckpointError(f"{path} holds a {meta['key_impl']!r} PRNG key, expected {impl!r}.")


def contents(state, net: Network):
    """(paths, leaves, epoch, step, key_impl) of what :func:`save` writes.

    A ``TrainState`` gives all its leaves (``.params[0]['W']``, ``.opt_state...``,
    ``.step``, ``.key``, ``.epoch``); bare params give ``[0]['W']``, ``[0]['b']``, ...
    with epoch and step 0 and the key implementation :data:`PARAMS_ONLY`.
    """
    if isinstance(state, TrainState):
        paths, leaves, _ = flatten_state(state)
        epoch = int(np.max(to_host("epoch", state.epoch)))
        step = int(np.max(to_host("step", state.step)))
        return paths, leaves, epoch, step, str(jax.random.key_impl(state.key))
    check_bare_params(state, net)
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    return [jax.tree_util.keystr(p) for p, _ in flat], [x for _, x in flat], 0, 0, PARAMS_ONLY


def check_bare_params(params, net: Network) -> None:
    """Refuse params that do not fit ``net``: one model, or E stacked on a leading (E,) axis."""
    if not isinstance(params, (list, tuple)):
        raise ValueError(f"state must be a jaxnn.TrainState or params (a list with one "
                         f"{{'W', 'b'}} dict per layer, e.g. what jaxnn.fit returns), got "
                         f"{type(params).__name__}.")
    leaves = jax.tree.leaves(params)
    if leaves and all(np.ndim(x) == 3 for x in leaves):  # an ensemble (fit_ensemble's params)
        sizes = {np.shape(x)[0] for x in leaves}
        if len(sizes) != 1:
            raise ValueError(f"ensemble params must share one leading (E,) axis, got sizes "
                             f"{sorted(sizes)}.")
        params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x)[1:], x.dtype), params)
    check_params(params, net)
    for x in jax.tree.leaves(params):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"params must be floating-point arrays, got a {x.dtype} leaf.")


def network_name(described: dict) -> str:
    """``Network((4, 6, 3), ('relu', 'softmax'), 'cross_entropy')`` from a ``describe()``."""
    sizes, acts = described.get("layer_sizes"), described.get("activations")
    return (f"Network({tuple(sizes) if isinstance(sizes, list) else sizes!r}, "
            f"{tuple(acts) if isinstance(acts, list) else acts!r}, {described.get('loss')!r})")


def param_paths(net: Network) -> list[str]:
    """The leaf paths of ``net``'s params, in tree order: ``[0]['W']``, ``[0]['b']``, ..."""
    shapes = [{k: jax.ShapeDtypeStruct(v, jnp.float32) for k, v in layer.items()}
              for layer in net.param_shapes()]
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(shapes)[0]]


def refuse_params_only(meta: dict, path: Path) -> None:
    if meta["key_impl"] == PARAMS_ONLY:
        raise CheckpointError(f"{path} holds params only (saved from params, not a TrainState), "
                              "so there is no optimizer state, step or key to restore: use "
                              "jaxnn.checkpoint.load(path, net) for the params, and "
                              "jaxnn.init_state(params, key, ...) to train on from them.")


def params_index(meta: dict, path: Path, net: Network) -> list[int]:
    """Indices (file order) of the params' leaves in ``meta``; raises unless they fit ``net``."""
    ours = net.describe()
    if meta["network"] != ours:
        diff = [f"{k}: file {meta['network'].get(k)} vs net {ours[k]}" for k in ours
                if meta["network"].get(k) != ours[k]]
        raise CheckpointError(f"{path} was saved for {network_name(meta['network'])}, but net "
                              f"is {network_name(ours)} ({'; '.join(diff)}). Load it with the "
                              "Network it was saved for.")
    prefix = "" if meta["key_impl"] == PARAMS_ONLY else ".params"
    where = {d["path"]: i for i, d in enumerate(meta["leaves"])}
    index = []
    for name, shapes in zip(param_paths(net), (s for layer in net.param_shapes()
                                                for s in layer.values()), strict=True):
        i = where.get(prefix + name)
        shape = tuple(meta["leaves"][i]["shape"]) if i is not None else None
        if i is None or shape[-2:] != shapes or len(shape) not in (2, 3):
            found = "missing" if i is None else f"shape {shape}"
            raise CheckpointError(f"{path}: params leaf {prefix}{name} is {found}, expected "
                                  f"{shapes} (or (E,) + {shapes} for an ensemble) for "
                                  f"{network_name(ours)}; the file is not this network's.")
        index.append(i)
    leading = {tuple(meta["leaves"][i]["shape"][:-2]) for i in index}
    if len(leading) != 1:
        raise CheckpointError(f"{path}: the params leaves disagree on the ensemble axis "
                              f"({sorted(leading)}); the file is not a jaxnn model.")
    return index


__all__ = ["PARAMS_ONLY", "check_bare_params", "check_matches", "contents", "flatten_state",
           "network_name", "param_paths", "params_index", "refuse_params_only", "to_host"]
