"""Tests of jaxnn.checkpoint: exact round trips, bit-for-bit resume, mismatch messages,
atomic writes and no pickle."""

import json
import zipfile

import jax
import numpy as np
import pytest
from conftest import draw

import jaxnn
from jaxnn import Network, checkpoint, init_params
from jaxnn.train import training

NET = Network((4, 6, 3), ("relu", "softmax"), "cross_entropy")
# adam + dropout + L2 + a partial last batch (m = 26, B = 8): every piece of state matters.
SETTINGS = dict(optimizer="adam", batch_size=8, keep_prob=0.8, l2=0.1, progress=False)


def _data(m=26):
    k1, k2 = jax.random.split(jax.random.key(0))
    X = draw(jax.random.normal, k1, (4, m))
    Y = jax.nn.one_hot(draw(jax.random.randint, k2, (m,), minval=0, maxval=3), 3).T
    return X, Y


def _state(net=NET, optimizer="adam", seed=0):
    params = init_params(jax.random.key(seed), net)
    return jaxnn.init_state(params, jax.random.key(seed + 1), optimizer=optimizer,
                               learning_rate=1e-2)


def _leaves_equal(a, b):
    a = a._replace(key=jax.random.key_data(a.key))
    b = b._replace(key=jax.random.key_data(b.key))
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) and x.dtype == y.dtype
                                      for x, y in zip(la, lb))


def test_resume_reproduces_uninterrupted_training_bit_for_bit(tmp_path):
    data = _data()
    straight, h_all = training.train_epochs(_state(), NET, data, epochs=6, **SETTINGS)
    first, h1 = training.train_epochs(_state(), NET, data, epochs=3, **SETTINGS)
    checkpoint.save(tmp_path, first, NET, config={"note": "half way"})
    restored = checkpoint.restore(tmp_path, NET, like=_state(seed=9))  # values come from the file
    resumed, h2 = training.train_epochs(restored, NET, data, epochs=3, **SETTINGS)
    assert _leaves_equal(straight, resumed)
    np.testing.assert_array_equal(h_all["cost"], np.concatenate([h1["cost"], h2["cost"]]))
    np.testing.assert_array_equal(h2["epoch"], [4, 5, 6])
    assert int(resumed.step) == 6 * 4  # ceil(26 / 8) updates per epoch


def test_round_trip_is_exact_and_needs_no_pickle(tmp_path):
    state, _ = training.train_epochs(_state(), NET, _data(), epochs=1, **SETTINGS)
    path = checkpoint.save(tmp_path, state, NET, config={"lr": 1e-2})
    assert _leaves_equal(checkpoint.restore(path, NET, like=_state()), state)
    with np.load(path, allow_pickle=False) as npz:  # would raise on any object array
        meta = json.loads(str(npz["meta"]))
        assert all(npz[k].dtype != object for k in npz.files)
    assert meta["network"] == NET.describe() and meta["config"] == {"lr": 1e-2}
    assert meta["epoch"] == 1 and meta["key_impl"] == "threefry2x32"
    assert checkpoint.read_metadata(tmp_path)["step"] == int(state.step)
    assert not any(n.endswith(".pkl") for n in zipfile.ZipFile(path).namelist())


def test_ensemble_state_round_trip(tmp_path):
    P = jaxnn.init_ensemble(jax.random.key(0), NET, 3)
    state = jaxnn.init_state(P, jax.random.key(1), optimizer="gd",
                                learning_rate=np.array([0.1, 0.2, 0.3]), ensemble=True)
    checkpoint.save(tmp_path, state, NET)
    back = checkpoint.restore(tmp_path, NET, like=state)
    assert _leaves_equal(back, state) and back.key.shape == (3,)


def test_restore_says_what_differs(tmp_path):
    checkpoint.save(tmp_path, _state(), NET)
    other = Network((4, 8, 3), ("tanh", "softmax"), "cross_entropy")
    with pytest.raises(ValueError, match=r"layer_sizes: file \[4, 6, 3\] vs network \[4, 8, 3\]"
                                         r".*activations"):
        checkpoint.restore(tmp_path, other, like=_state(other))
    with pytest.raises(ValueError, match="optimizer.*(missing|not expected)"):
        checkpoint.restore(tmp_path, NET, like=_state(optimizer="gd"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint in .*empty: LATEST is missing"):
        checkpoint.restore(tmp_path / "empty", NET, like=_state())


def test_writes_are_atomic_and_latest_moves_last(tmp_path, monkeypatch):
    state = _state()
    first = checkpoint.save(tmp_path, state, NET)
    state = state._replace(epoch=state.epoch + 1)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(checkpoint.CheckpointError, match=r"cannot save .*ckpt-000001\.npz: disk "
                       r"full \(writing .*\); the previous checkpoint and LATEST are unchanged"):
        checkpoint.save(tmp_path, state, NET)
    monkeypatch.undo()
    # the failed write left no partial file and LATEST still names the complete checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", first.name]
    assert checkpoint.resolve(tmp_path) == first
    for e in range(2, 6):  # keep=3 prunes the oldest
        path = checkpoint.save(tmp_path, state._replace(epoch=state.epoch * 0 + e), NET, keep=3)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == [
        "ckpt-000003.npz", "ckpt-000004.npz", "ckpt-000005.npz"]
    assert checkpoint.resolve(tmp_path) == path


# --- fit -> save -> load: bare params --------------------------------------------------------


def test_fit_save_load_round_trips_bare_params(tmp_path):
    params, _ = training.fit(init_params(jax.random.key(0), NET), NET, _data(), epochs=2,
                             key=jax.random.key(1), **SETTINGS)
    path = checkpoint.save(tmp_path / "model", params, NET)
    back = checkpoint.load(tmp_path / "model", NET)
    assert path.name == "ckpt-000000.npz" and checkpoint.resolve(tmp_path / "model") == path
    assert isinstance(back, list) and [sorted(p) for p in back] == [["W", "b"]] * 2
    assert all(np.array_equal(a, b) and a.dtype == b.dtype
               for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True))
    meta = checkpoint.read_metadata(path)
    assert [d["path"] for d in meta["leaves"]] == ["[0]['W']", "[0]['b']", "[1]['W']", "[1]['b']"]
    assert meta["key_impl"] == checkpoint.PARAMS_ONLY and meta["network"] == NET.describe()
    # the same verified format: a flipped byte in a params-only file is refused
    raw = bytearray(path.read_bytes())
    at = raw.index(np.asarray(params[0]["W"]).tobytes()[:16])
    raw[at] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(checkpoint.CheckpointError, match="corrupt|checksum|sha256|CRC"):
        checkpoint.load(path, NET)


def test_load_gives_the_params_of_a_saved_train_state(tmp_path):
    state, _ = training.train_epochs(_state(), NET, _data(), epochs=2, **SETTINGS)
    checkpoint.save(tmp_path, state, NET)
    back = checkpoint.load(tmp_path, NET)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype
               for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(state.params), strict=True))
    ensemble = jaxnn.init_ensemble(jax.random.key(0), NET, 3)
    checkpoint.save(tmp_path / "ensemble", ensemble, NET)
    back = checkpoint.load(tmp_path / "ensemble", NET)
    assert [x.shape for x in jax.tree.leaves(back)] == [(3, 6, 4), (3, 6, 1), (3, 3, 6), (3, 3, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(back),
                                                     jax.tree.leaves(ensemble), strict=True))


def test_load_names_both_networks_when_they_differ(tmp_path):
    checkpoint.save(tmp_path, init_params(jax.random.key(0), NET), NET)
    other = Network((4, 8, 3), ("tanh", "softmax"), "cross_entropy")
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(tmp_path, other)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "saved for Network((4, 6, 3), ('relu', 'softmax'), 'cross_entropy')" in message
    assert "net is Network((4, 8, 3), ('tanh', 'softmax'), 'cross_entropy')" in message
    assert "layer_sizes: file [4, 6, 3] vs net [4, 8, 3]" in message and "loss" not in message
    # a params-only file has no state to restore, and restore says so and what to call
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"params only .*jaxnn\.checkpoint\.load\(path, net\)"):
        checkpoint.restore(tmp_path, NET, like=_state())


def test_save_refuses_params_that_do_not_fit_the_network(tmp_path):
    params = init_params(jax.random.key(0), NET)
    with pytest.raises(ValueError, match="params has 1 layers but the Network has L = 2"):
        checkpoint.save(tmp_path, params[:1], NET)
    with pytest.raises(ValueError, match=r"layer 1: W has shape \(6, 4\), expected \(8, 4\)"):
        checkpoint.save(tmp_path, params, Network((4, 8, 3), ("relu", "softmax"), "cross_entropy"))
    with pytest.raises(ValueError, match="TrainState or params .* got dict"):
        checkpoint.save(tmp_path, {"W": params[0]["W"]}, NET)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing written
