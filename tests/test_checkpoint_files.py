"""Tests of jaxnn.checkpoint against bad files: every problem is one CheckpointError naming
the file and what is wrong; crafted arrays are refused, never reinterpreted; LATEST stays
inside its folder; save clears temporary files, prunes to keep=N and writes on process 0."""

import json
import os
import zipfile

import jax
import ml_dtypes
import numpy as np
import pytest

import jaxnn
from jaxnn import Network, TrainState, checkpoint

CheckpointError = checkpoint.CheckpointError
NET = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")


def _state(epoch=0, dtype=np.float32):
    """A small TrainState from NumPy leaves (no compilation), values derived from epoch."""
    W1 = (np.arange(6).reshape(3, 2) / 8 + epoch).astype(dtype)
    params = [{"W": W1, "b": np.full((3, 1), -epoch, dtype)},
              {"W": np.full((1, 3), epoch / 2, dtype), "b": np.full((1, 1), epoch, dtype)}]
    return TrainState(params=params, opt_state=(np.float32(0.5),), step=np.int32(3 * epoch),
                      key=jax.random.wrap_key_data(np.array([0, 7], np.uint32)),
                      epoch=np.int32(epoch))


LIKE = _state()


def _equal(a, b):
    la = jax.tree.leaves(a._replace(key=jax.random.key_data(a.key)))
    lb = jax.tree.leaves(b._replace(key=jax.random.key_data(b.key)))
    return len(la) == len(lb) and all(np.asarray(x).dtype == np.asarray(y).dtype
                                      and np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.fixture
def saved(tmp_path):
    return checkpoint.save(tmp_path / "run", _state(2), NET)


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n[:-4]: np.lib.format.read_array(zf.open(n)) for n in zf.namelist()}


def _rewrite(path, meta_edit=None, **arrays):
    """Re-save path as a consistent zip with some arrays (or the metadata) replaced."""
    members = _members(path)
    meta = json.loads(str(members["meta"]))
    if meta_edit is not None:
        meta_edit(meta)
    members = members | {"meta": np.array(json.dumps(meta))} | arrays
    np.savez(path, **{k: v for k, v in members.items() if v is not None})


# ------------------------------------------------------------- what the file is
def test_empty_file(saved):
    saved.write_bytes(b"")
    with pytest.raises(CheckpointError, match=rf"checkpoint .*{saved.name} is empty \(0 bytes\)"):
        checkpoint.restore(saved, NET, like=LIKE)


def test_not_a_zip(saved):
    saved.write_text("epoch,cost\n1,0.5\n")
    with pytest.raises(CheckpointError, match=rf"{saved.name} is not an \.npz \(zip\) file: it "
                                              r"starts with b'epoc'"):
        checkpoint.read_metadata(saved)


def test_npz_that_is_not_a_jaxnn_checkpoint(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=np.zeros((2, 3)), y=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"data\.npz is an \.npz but not a jaxnn checkpoint: "
                                              r"it has no 'meta' array \(arrays: \['X\.npy'"):
        checkpoint.restore(path, NET, like=LIKE)
    np.savez(path, meta=np.array(json.dumps({"format": "other"})))
    with pytest.raises(CheckpointError, match=r"data\.npz is not a jaxnn checkpoint \(metadata "
                                              r"format 'other'"):
        checkpoint.read_metadata(path)


def test_truncated_files_are_refused(saved):
    data = saved.read_bytes()
    for n in sorted({*range(4, len(data), max(1, len(data) // 60)), len(data) - 1}):
        saved.write_bytes(data[:n])
        with pytest.raises(CheckpointError, match=rf"{saved.name} is corrupt or truncated"):
            checkpoint.restore(saved, NET, like=LIKE)
    saved.write_bytes(data[:2])
    with pytest.raises(CheckpointError, match="is not an .npz"):
        checkpoint.restore(saved, NET, like=LIKE)


def test_flipped_bytes_are_refused_or_harmless(saved):
    """A flipped byte anywhere gives a CheckpointError, or (in a zip field nobody reads,
    such as a timestamp) the very same state; never another state or a raw error."""
    data = bytearray(saved.read_bytes())
    want = checkpoint.restore(saved, NET, like=LIKE)
    refused = 0
    for i in range(0, len(data), max(1, len(data) // 150)):
        bad = data.copy()
        bad[i] ^= 0x5A
        saved.write_bytes(bad)
        try:
            got = checkpoint.restore(saved, NET, like=LIKE)
        except CheckpointError as err:
            assert saved.name in str(err)
            refused += 1
        else:
            assert _equal(got, want), f"byte {i} flipped gave another state"
    assert refused > 0
    # a flip inside an array's data: zip's CRC-32 (and the sha256) refuse it
    offset = bytes(data).index(np.float32(2.125).tobytes())  # W^[1][0, 1] = 1/8 + epoch 2
    data[offset] ^= 0x01
    saved.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"corrupt or truncated \(BadZipFile: Bad CRC-32"):
        checkpoint.restore(saved, NET, like=LIKE)


# -------------------------------------------------------- crafted, consistent zips
def test_array_of_another_shape_is_refused(saved):
    _rewrite(saved, leaf_00000=np.zeros((3, 3), np.float32))
    with pytest.raises(CheckpointError, match=r"leaf_00000 \(\.params\[0\]\['W'\]\) has shape "
                                              r"\(3, 3\), but the metadata says shape \(3, 2\)"):
        checkpoint.restore(saved, NET, like=LIKE)


def test_array_of_another_dtype_is_refused(saved):
    _rewrite(saved, leaf_00000=np.zeros((3, 2), np.int32))
    with pytest.raises(CheckpointError, match=r"leaf_00000 .* has dtype int32, but the metadata "
                                              r"says shape \(3, 2\), dtype float32"):
        checkpoint.restore(saved, NET, like=LIKE)


def test_edited_values_fail_the_checksum(saved):
    _rewrite(saved, leaf_00001=np.full((3, 1), 9.0, np.float32))
    with pytest.raises(CheckpointError, match=r"leaf_00001 .* has a different sha256, .*corrupt or "
                                              "was edited, refused"):
        checkpoint.restore(saved, NET, like=LIKE)


def test_oversized_array_is_refused_before_reading(saved):
    _rewrite(saved, leaf_00000=np.zeros((3, 20000), np.float32))
    with pytest.raises(CheckpointError, match=r"leaf_00000\.npy holds 240128 bytes, but its "
                                              "metadata describes 24 bytes"):
        checkpoint.restore(saved, NET, like=LIKE)


def test_extra_or_missing_arrays_are_refused(saved):
    _rewrite(saved, extra=np.zeros(2))
    with pytest.raises(CheckpointError, match=r"arrays do not match its metadata \(8 leaves\): "
                                              r"missing \[\], not described \['extra\.npy'\]"):
        checkpoint.restore(saved, NET, like=LIKE)
    _rewrite(saved, extra=None, leaf_00003=None)
    with pytest.raises(CheckpointError, match=r"missing \['leaf_00003\.npy'\], not described \[\]"):
        checkpoint.restore(saved, NET, like=LIKE)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(version=1), r"is a version-1 jaxnn checkpoint; this jaxnn reads "
                                    r"version 2 \(with per-array checksums\)"),
    (lambda m: m.pop("leaves"), r"malformed jaxnn checkpoint metadata: 'leaves' must be a list"),
    (lambda m: m["leaves"][2].pop("sha256"), r"metadata: leaf 2 must have a path, a shape"),
    (lambda m: m["leaves"][0].update(shape=[3, -2]), "leaf 0 must have a path, a shape of ints"),
    (lambda m: m.update(network="net"), "'network' must hold layer_sizes"),
    (lambda m: m.update(epoch="2"), "'epoch' must be a int"),
])
def test_malformed_metadata_is_refused(saved, edit, message):
    _rewrite(saved, meta_edit=edit)
    with pytest.raises(CheckpointError, match=rf"{saved.name}.*{message}"):
        checkpoint.restore(saved, NET, like=LIKE)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.read_metadata(saved)


@pytest.mark.parametrize("meta, message", [
    (np.array("{not json"), r"metadata: not JSON"),
    (np.array("[1, 2]"), "expected a JSON object, got list"),
    (np.array(["{}", "{}"]), r"'meta' must be a 0-d string, got <U2 \(2,\)"),
])
def test_metadata_that_is_not_a_json_object(saved, meta, message):
    _rewrite(saved, meta=meta)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.read_metadata(saved)


# ----------------------------------------------------------------------- LATEST
def test_latest_must_name_a_file_inside_the_folder(saved, tmp_path):
    folder, latest = saved.parent, saved.parent / "LATEST"
    elsewhere = checkpoint.save(tmp_path / "other", _state(5), NET)
    assert int(checkpoint.restore(folder, NET, like=LIKE).epoch) == 2
    for name in (str(elsewhere), "../other/ckpt-000005.npz", "..", "sub/ckpt-000002.npz"):
        latest.write_text(name + "\n")
        with pytest.raises(CheckpointError, match=r"LATEST names .* which is not a file inside "
                                                  r".*run; LATEST must hold a bare file name"):
            checkpoint.restore(folder, NET, like=LIKE)
    os.symlink(elsewhere, folder / "ckpt-000009.npz")
    latest.write_text("ckpt-000009.npz")
    with pytest.raises(CheckpointError, match=r"names 'ckpt-000009\.npz', a link to .*other.*, "
                                              "outside"):
        checkpoint.restore(folder, NET, like=LIKE)
    latest.write_text(" \n")
    with pytest.raises(CheckpointError, match=r"LATEST is empty; it should name a checkpoint"):
        checkpoint.resolve(folder)
    latest.write_text("ckpt-000004.npz\n")
    with pytest.raises(CheckpointError, match=r"names 'ckpt-000004\.npz', which does not exist"):
        checkpoint.read_metadata(folder)
    latest.unlink()
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*run: LATEST is missing"):
        checkpoint.restore(folder, NET, like=LIKE)
    with pytest.raises(CheckpointError, match=r"checkpoint .*nowhere does not exist"):
        checkpoint.restore(tmp_path / "nowhere", NET, like=LIKE)


# ------------------------------------------------------------------------- save
def test_save_removes_temporary_files_of_a_killed_save(tmp_path):
    checkpoint.save(tmp_path, _state(1), NET)
    stale = [".ckpt-000002.npz.k3j_x9.tmp", ".LATEST.a8b2c.tmp"]
    mine = ["notes.txt", "ckpt-best.npz", ".hidden.tmp"]
    for name in stale + mine:
        (tmp_path / name).write_bytes(b"partial")
    checkpoint.save(tmp_path, _state(2), NET)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["LATEST", "ckpt-000001.npz", "ckpt-000002.npz", *mine])


def test_keep_prunes_old_checkpoints_but_never_latest(tmp_path):
    (tmp_path / "ckpt-best.npz").write_bytes(b"the user's own file")
    for e in range(1, 6):
        checkpoint.save(tmp_path, _state(e), NET, keep=2)
    names = lambda: sorted(p.name for p in tmp_path.glob("ckpt-*"))  # noqa: E731
    assert names() == ["ckpt-000004.npz", "ckpt-000005.npz", "ckpt-best.npz"]
    checkpoint.save(tmp_path, _state(3), NET, keep=1)  # LATEST moves back to epoch 3
    assert names() == ["ckpt-000003.npz", "ckpt-000005.npz", "ckpt-best.npz"]
    assert int(checkpoint.restore(tmp_path, NET, like=LIKE).epoch) == 3
    for e in range(6, 10):
        checkpoint.save(tmp_path, _state(e), NET, keep=None)
    assert len(names()) == 7
    for keep in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match=rf"keep = {keep!r}: expected an integer >= 1"):
            checkpoint.save(tmp_path, _state(1), NET, keep=keep)


def test_save_argument_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match=r"folder .*file is a file, not a folder"):
        checkpoint.save(tmp_path / "file", _state(), NET)
    with pytest.raises(ValueError, match="config must be JSON-serialisable"):
        checkpoint.save(tmp_path, _state(), NET, config={"f": object()})
    with pytest.raises(ValueError, match="net must be a jaxnn.Network, got tuple"):
        checkpoint.save(tmp_path, _state(), (2, 3, 1))


def test_bfloat16_round_trip(tmp_path):
    state = _state(3, dtype=ml_dtypes.bfloat16)
    checkpoint.save(tmp_path, state, NET)
    meta = checkpoint.read_metadata(tmp_path)
    assert meta["leaves"][0]["dtype"] == "bfloat16" and len(meta["leaves"][0]["sha256"]) == 64
    back = checkpoint.restore(tmp_path, NET, like=_state(dtype=ml_dtypes.bfloat16))
    assert _equal(back, state) and back.params[0]["W"].dtype == ml_dtypes.bfloat16


# --------------------------------------------------------------- several processes
def test_only_process_0_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    waited = []  # every process waits for process 0's file before returning
    monkeypatch.setattr(jaxnn.distributed, "barrier", waited.append)
    assert checkpoint.save(tmp_path / "run", _state(4), NET) == tmp_path / "run/ckpt-000004.npz"
    assert not (tmp_path / "run").exists() and waited == ["jaxnn checkpoint ckpt-000004.npz"]
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    path = checkpoint.save(tmp_path / "run", _state(4), NET)
    assert _equal(checkpoint.restore(tmp_path / "run", NET, like=LIKE), _state(4))
    assert path == tmp_path / "run/ckpt-000004.npz"


class _SplitAcrossProcesses:
    """Stands in for a global jax.Array sharded over devices of several processes:
    np.asarray of one raises the RuntimeError jax raises."""

    is_fully_addressable = is_fully_replicated = False
    sharding = "NamedSharding(mesh, PartitionSpec('batch'))"

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Fetching value for `jax.Array` that spans non-addressable (non "
                           "process local) devices is not possible.")


def test_a_leaf_split_across_processes_is_refused(tmp_path):
    state = _state()
    state = state._replace(params=[{**state.params[0], "W": _SplitAcrossProcesses()},
                                   state.params[1]])
    with pytest.raises(CheckpointError, match=r"cannot save leaf \.params\[0\]\['W'\]: it is "
                                              "split across processes .*not fully replicated"):
        checkpoint.save(tmp_path, state, NET)
    assert not any(tmp_path.iterdir())
