"""Faults during a run, injected for real: nothing lost, nothing hangs, one line and an exit code.

Real `python -m jaxnn train` processes are SIGKILLed and SIGTERMed at random moments and
resumed; two processes write one folder; a small tmpfs fills up or turns read-only; a FIFO is
passed as --csv. Each case asserts the one-line message, the exit status, and that the last
good checkpoint and history.json restore (and continue bit for bit). Every subprocess has a
timeout; the runs share one compilation cache, so each after the first starts fast.
"""

import ast
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxnn import Network, TrainState, checkpoint, cli, datasets, load_history
from jaxnn.core.validate import MissingFileError

FAST = ["--dataset", "iris", "--layers", "8", "--batch-size", "0", "--no-progress", "--no-plot"]
ERROR = "jaxnn train: error: "
TIMEOUT = 90  # s: any one subprocess; a hang fails the test instead of the suite


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("xla-cache")
    return dict(os.environ, JAX_PLATFORMS="cpu", JAXNN_CACHE_DIR=str(cache),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAXNN_TRACEBACK="")


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXNN_CACHE_DIR", "")
    monkeypatch.chdir(tmp_path)
    yield
    while _started:  # a failed test leaves no process running
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A folder in memory (/dev/shm) where there is one, as the cwd: a save every epoch costs
    fsyncs that a loaded disk makes slow (45 ms an epoch here), a tmpfs nothing."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="jaxnn-faults-"))
    monkeypatch.chdir(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def start(env, *argv, **kw) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "jaxnn", "train", *FAST, *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    _started.append(proc)
    return proc


def train(env, *argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jaxnn", "train", *FAST, *argv], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, **kw)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{proc.args} did not end within {TIMEOUT} s") from None
    return proc.returncode, out, err


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    return err[:-1]


def saved_epoch(folder: Path) -> int:
    return checkpoint.read_metadata(folder)["epoch"]


def wait_for_epoch(folder: Path, proc: subprocess.Popen, epoch: int = 1) -> int:
    """Poll until the folder's checkpoint is at ``epoch`` or later (the process still running)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT:
        if (folder / "LATEST").is_file():
            try:
                if (e := saved_epoch(folder)) >= epoch:
                    return e
            except checkpoint.CheckpointError:
                pass  # LATEST moved on to a file the tidy step just pruned: look again
        assert proc.poll() is None, finish(proc)
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no checkpoint at epoch {epoch} in {folder} within {TIMEOUT} s")


def history(folder: Path) -> dict:
    h = json.loads((folder / "history.json").read_text())
    del h["settings"]
    return h


def assert_history_covers_checkpoint(folder: Path, save_every: int = 1) -> int:
    """history.json holds every epoch 1..e of the checkpoint (and at most those of the save
    that was under way: the history is written first)."""
    e = saved_epoch(folder)
    rows = history(folder)["epoch"]
    assert rows[:e] == list(range(1, e + 1)) and len(rows) <= e + save_every, (e, rows)
    return e


def leaves(folder: Path) -> dict:
    with np.load(checkpoint.resolve(folder), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "meta"}


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------ kill, terminate, resume
def test_killed_and_resumed_run_has_the_whole_history_and_the_same_params(env, work):
    """2 SIGKILLs and a SIGTERM at random moments, each followed by a resume (the first with a
    larger --epochs): history.json and the final checkpoint equal an uninterrupted run's, row
    for row and bit for bit. A SIGKILLed run leaves its lock file: the resume takes it over."""
    E, MORE = 200, 260
    straight = start(env, "--epochs", str(MORE), "--save-every", "1", "--out", "straight")
    rng = random.Random(20)
    run, interrupts = work / "run", []
    for i, sig in enumerate([signal.SIGKILL] * 2 + [signal.SIGTERM]):
        proc = start(env, *(["--resume"] if i else []), "--epochs", str(MORE if i else E),
                     "--save-every", "1", "--out", "run")
        wait_for_epoch(run, proc, (saved_epoch(run) + 1) if i else 1)
        time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(sig)
        code, _, err = finish(proc)
        if code == 0:  # it finished before the signal: nothing to check for this one
            break
        interrupts.append(assert_history_covers_checkpoint(run))
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:  # SIGTERM: one line, exit 143, no temporary file left, the checkpoint whole
            assert code == 143
            assert one_line(err) == ("jaxnn train: terminated (SIGTERM); nothing partial was "
                                     "written: --out keeps its last complete checkpoint and "
                                     "history (--resume continues)")
            assert temp_files(run) == []
            assert not (run / ".jaxnn-lock").exists()
    assert len(interrupts) == 3 and interrupts[0] < E, interrupts  # each landed mid-run
    done = train(env, "--resume", "--epochs", str(MORE), "--out", "run")
    assert done.returncode == 0, done.stderr
    assert finish(straight)[0] == 0
    assert history(run) == history(work / "straight")  # every row, every number
    assert history(run)["epoch"] == list(range(1, MORE + 1))
    a, b = leaves(run), leaves(work / "straight")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert temp_files(run) == [] and saved_epoch(run) == MORE
    print(f"interrupted at epochs {interrupts}")


# ------------------------------------------------------------------ two writers in one folder
def test_a_second_run_on_the_same_out_is_refused_naming_the_first(env, work):
    # --save-every 1 as in the other runs here: the same compiled programs, from the cache
    first = start(env, "--epochs", "1000000", "--save-every", "1", "--out", "shared")
    wait_for_epoch(work / "shared", first, 5)
    others = [start(env, "--epochs", "5", "--save-every", "1", "--out", "shared"),
              start(env, "--resume", "--epochs", "1000001", "--out", "shared")]
    for code, out, err in map(finish, others):
        assert code == 2 and out == ""
        assert one_line(err) == (
            f"{ERROR}--out shared: folder shared is being written by process {first.pid}; "
            "pass another --out (or wait for that run to end).")
    assert first.poll() is None  # the first run never noticed
    first.send_signal(signal.SIGKILL)
    finish(first)
    assert_history_covers_checkpoint(work / "shared")
    net = Network((4, 8, 3), ("tanh", "softmax"), "cross_entropy")
    assert checkpoint.load(work / "shared", net)[0]["W"].shape == (8, 4)  # verified


WRITER = r"""
import os, sys, time
import numpy as np
from jaxnn import Network, TrainState, checkpoint

folder, me = sys.argv[1], int(sys.argv[2])
net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
import jax
key = jax.random.wrap_key_data(np.array([0, 7], np.uint32))
def state(epoch):
    params = [{"W": np.full((3, 2), epoch, np.float32), "b": np.zeros((3, 1), np.float32)},
              {"W": np.full((1, 3), me, np.float32), "b": np.zeros((1, 1), np.float32)}]
    return TrainState(params=params, opt_state=(), step=np.int32(epoch), key=key,
                      epoch=np.int32(epoch))
open(f"{folder}.ready{me}", "w").close()
t0 = time.monotonic()
while not all(os.path.exists(f"{folder}.ready{i}") for i in (0, 1)):
    assert time.monotonic() - t0 < 60
    time.sleep(0.005)
saved, refused = 0, {}
for epoch in range(1000 * me, 1000 * me + 150):
    try:
        checkpoint.save(folder, state(epoch), net, keep=2)
        saved += 1
    except checkpoint.FolderInUseError as e:
        refused[e.pid] = refused.get(e.pid, 0) + 1
        assert str(e).startswith(f"folder {folder} is being written by process {e.pid} "), e
print(saved, refused)
"""


def test_two_processes_saving_into_one_folder_never_break_each_other(tmp_path):
    """150 saves each: a save is refused only while the other holds the lock, naming it; no
    other error (the tidy never deletes a live writer's temporary file); the folder restores."""
    folder = tmp_path / "ckpt"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, JAX_PLATFORMS="cpu")) for i in (0, 1)]
    _started.extend(procs)
    results = [finish(p) for p in procs]
    for (code, out, err), other in zip(results, procs[::-1]):
        assert code == 0, err
        saved, refused = out.split(" ", 1)
        refused = ast.literal_eval(refused)  # {pid: count}, printed by the writer
        assert int(saved) + sum(refused.values()) == 150
        assert set(refused) <= {other.pid}, refused
    net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    meta = checkpoint.read_metadata(folder)
    assert meta["epoch"] % 1000 < 150 and temp_files(folder) == []
    assert len(list(folder.glob("ckpt-*.npz"))) <= 4  # keep=2 from each writer's last save
    like = TrainState(params=[{"W": np.zeros((3, 2), np.float32), "b": np.zeros((3, 1), np.float32)},
                              {"W": np.zeros((1, 3), np.float32), "b": np.zeros((1, 1), np.float32)}],
                      opt_state=(), step=np.int32(0), key=jax.random.key(0), epoch=np.int32(0))
    assert int(checkpoint.restore(folder, net, like=like).epoch) == meta["epoch"]
    print("saved/refused:", [r[1].strip() for r in results])


def test_an_out_holding_a_run_needs_resume_or_overwrite(tmp_path, capsys):
    argv = ["train", *FAST, "--epochs", "2", "--out", "o"]
    assert cli.main(argv) == 0
    before = leaves(tmp_path / "o")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert one_line(capsys.readouterr().err) == (
        f"{ERROR}--out o already holds a run (LATEST, ckpt-000002.npz, history.json); pass "
        "--resume to continue it, --overwrite to start afresh (deletes its checkpoints and "
        "history), or another --out.")
    assert all(np.array_equal(a, b) for a, b in zip(before.values(), leaves(tmp_path / "o").values()))
    with pytest.raises(SystemExit):
        cli.main([*argv, "--overwrite", "--resume"])
    assert "give one of them" in capsys.readouterr().err
    (tmp_path / "o" / "notes.txt").write_text("mine")
    assert cli.main(["train", *FAST, "--epochs", "3", "--save-every", "3", "--out", "o",
                     "--overwrite"]) == 0
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["LATEST", "ckpt-000003.npz", "history.json", "notes.txt"]
    assert history(tmp_path / "o")["epoch"] == [1, 2, 3]
    # a history that lost rows (deleted, or from an older jaxnn) is said, not hidden
    (tmp_path / "o" / "history.json").unlink()
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--epochs", "4", "--out", "o", "--no-progress"]) == 0
    assert ("note: o/history.json holds no rows, not every epoch 1..3 of the checkpoint (written "
            "by an older jaxnn, or edited); the curves miss the rest.\n") in capsys.readouterr().out
    assert history(tmp_path / "o")["epoch"] == [4]


# ------------------------------------------------------------------ full and read-only disks
@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs of our own (root), unmounted afterwards; skipped where mount fails."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"cannot mount a tmpfs here: {err}")
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here (mount: {r.stderr.strip()}); needs root")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def fill(folder: Path, name: str = "filler") -> Path:
    filler = folder / name
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as err:
        assert err.errno == 28  # ENOSPC
    finally:
        os.close(fd)
    return filler


def test_full_disk_is_one_line_and_keeps_the_last_checkpoint(env, small_fs):
    run = small_fs / "run"
    proc = start(env, "--epochs", "100000", "--save-every", "1", "--out", str(run))
    wait_for_epoch(run, proc, 3)
    filler = fill(small_fs)
    code, _, err = finish(proc)
    assert code == 2
    line = one_line(err)
    assert re.fullmatch(rf"{ERROR}(cannot write {run}/history\.json: No space left on device "
                        r"\(ENOSPC\); the newest checkpoint and the previous history\.json are "
                        rf"intact\.|cannot save {run}/ckpt-\d+\.npz: No space left on device "
                        r"\(ENOSPC\) .*)", line), line
    e = assert_history_covers_checkpoint(run)
    assert temp_files(run) == []
    # the library says the same: a CheckpointError naming the path and the reason (filled
    # again: the run's exit freed its lock and temporary files)
    refill = fill(small_fs, "filler2")
    net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    state = _state(net, 7)
    with pytest.raises(checkpoint.CheckpointError, match=r"No space left on device \(ENOSPC\)"):
        checkpoint.save(run, state, net)
    assert saved_epoch(run) == e
    iris = Network((4, 8, 3), ("tanh", "softmax"), "cross_entropy")
    assert checkpoint.load(run, iris)[1]["W"].shape == (3, 8)  # every array verified
    filler.unlink()
    refill.unlink()  # space again: the library saves there again (resuming: see the kill test)
    assert checkpoint.save(run / "again", state, net).name == "ckpt-000007.npz"


def test_read_only_out(small_fs, capsys):
    run = small_fs / "run"
    assert cli.main(["train", *FAST, "--epochs", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--resume", "--epochs", "4", "--out", str(run), "--no-progress"])
    assert e.value.code == 2
    assert one_line(capsys.readouterr().err) == (
        f"{ERROR}--out {run}: cannot write in folder {run}: Read-only file system (EROFS) "
        f"({run}/.jaxnn-lock).")
    net = Network((4, 8, 3), ("tanh", "softmax"), "cross_entropy")
    with pytest.raises(checkpoint.CheckpointError, match=rf"cannot write in folder {run}: "
                                                         r"Read-only file system \(EROFS\)"):
        checkpoint.save(run, _state(net, 3), net)
    assert saved_epoch(run) == 2 and load_history(run / "history.json")["epoch"].tolist() == [1, 2]


def _state(net, epoch):
    from jaxnn import init_params, init_state

    state = init_state(init_params(jax.random.key(0), net), jax.random.key(1))
    return state._replace(epoch=state.epoch + epoch)


# ------------------------------------------------------------------ files that are not files
def test_fifo_as_csv_or_out_is_refused_without_blocking(tmp_path, capsys):
    os.mkfifo(tmp_path / "data.csv")
    os.mkfifo(tmp_path / "pipe")
    def blocked(signum, frame):
        raise TimeoutError("a FIFO was opened: the run blocked")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(60)  # an open() of the FIFO would block forever: fail instead
    try:
        for argv, message in [
            (["--csv", "data.csv"], "--csv data.csv: it is a FIFO (named pipe), not a regular "
                                    "file; save the data to a file and pass that."),
            (["--dataset", "iris", "--out", "pipe"], "--out pipe: pipe is a FIFO (named pipe), "
                                                     "not a folder; pass a folder path (it is "
                                                     "created if missing)."),
            (["--csv", "/dev/zero"], "--csv /dev/zero: it is a device, not a regular file; save "
                                     "the data to a file and pass that."),
        ]:
            with pytest.raises(SystemExit) as e:
                cli.main(["train", *argv, "--epochs", "1", "--no-progress"])
            assert e.value.code == 2
            captured = capsys.readouterr()
            assert one_line(captured.err) == ERROR + message and captured.out == ""
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_stdout_on_a_full_device_is_one_line(tmp_path, capsys):
    stdout = sys.stdout
    with open("/dev/full", "w") as full:
        sys.stdout = full
        try:
            with pytest.raises(SystemExit) as e:
                cli.main(["train", *FAST, "--epochs", "1", "--out", "o"])
        finally:
            sys.stdout = stdout
        # the broken stream now leads to /dev/null: the exit's flush cannot fail again
        assert os.readlink(f"/proc/self/fd/{full.fileno()}") == os.devnull
    assert e.value.code == 2
    assert one_line(capsys.readouterr().err) == (
        f"{ERROR}No space left on device (ENOSPC) (writing its output?)")
    assert not (tmp_path / "o").exists()  # the folder it made for the run is removed again


# ------------------------------------------------------------------ the library's OS errors
def test_checkpoint_os_errors_are_checkpoint_errors_naming_path_and_reason(tmp_path):
    net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    state = _state(net, 1)
    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    (tmp_path / "run" / "LATEST").mkdir(parents=True)
    for folder, message in [
        (tmp_path / "file" / "sub", rf"cannot write in folder {tmp_path}/file/sub: "
                                    rf"{tmp_path}/file is a file, not a folder"),
        (tmp_path / "loop", rf"cannot write in folder {tmp_path}/loop: {tmp_path}/loop is a "
                            r"symbolic link loop \(Too many levels of symbolic links \(ELOOP\)\)"),
        (tmp_path / "run", rf"cannot save {tmp_path}/run/ckpt-000001\.npz: {tmp_path}/run/"
                           r"LATEST is not a file \(a folder"),
    ]:
        with pytest.raises(checkpoint.CheckpointError, match=message):
            checkpoint.save(folder, state, net)
    assert temp_files(tmp_path / "run") == []
    with pytest.raises(checkpoint.CheckpointError, match=r"run/LATEST is not a file"):
        checkpoint.restore(tmp_path / "run", net, like=state)
    with pytest.raises(checkpoint.CheckpointError, match=r"loop cannot be read: .*ELOOP"):
        checkpoint.restore(tmp_path / "loop", net, like=state)


def test_missing_files_are_file_not_found_and_jaxnn_errors(tmp_path):
    net = Network((2, 3, 1), ("tanh", "sigmoid"), "bce")
    state = _state(net, 1)
    (tmp_path / "empty").mkdir()
    checkpoint.save(tmp_path / "gone", state, net)
    (tmp_path / "gone" / "ckpt-000001.npz").unlink()
    (tmp_path / "idx").mkdir()
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / "idx" / name).write_bytes(b"")
    cases = [
        (lambda: datasets.load_csv(tmp_path / "no.csv", label_column=-1), r"no\.csv does not exist"),
        (lambda: datasets.load_npz(tmp_path / "no.npz"), r"no\.npz does not exist"),
        (lambda: datasets.load_idx(tmp_path / "nofolder"), r"nofolder does not exist"),
        (lambda: datasets.load_idx(tmp_path / "idx"), r"train-labels-idx1-ubyte \(or .*\.gz\) "
                                                      r"not found in .*idx"),
        (lambda: checkpoint.restore(tmp_path / "nowhere", net, like=state),
         r"checkpoint .*nowhere does not exist"),
        (lambda: checkpoint.restore(tmp_path / "empty", net, like=state),
         r"no checkpoint in .*empty: LATEST is missing"),
        (lambda: checkpoint.read_metadata(tmp_path / "gone"),
         r"LATEST names 'ckpt-000001\.npz', which does not exist in .*gone"),
        (lambda: load_history(tmp_path / "history.json"), r"history\.json does not exist"),
    ]
    for call, message in cases:
        with pytest.raises(FileNotFoundError, match=message) as e:
            call()
        assert isinstance(e.value, MissingFileError) and isinstance(e.value, ValueError)
        assert e.value.errno == 2 and str(tmp_path) in str(e.value)


def test_exit_statuses_are_in_the_help():
    text = " ".join(cli.build_parser().format_help().split())
    assert ("Exit status: 0 done; 1 the run failed (gradient check, divergence, a lost peer "
            "process); 2 it could not start or go on:") in text
    assert "130 Ctrl-C; 143 SIGTERM." in text


@pytest.mark.parametrize("seed,ok", [("9223372036854775807", True), ("9223372036854775808", False),
                                     (str(2**70), False), ("-1", False)])
def test_seed_is_bounded_and_named(seed, ok, capsys):
    parser = cli.build_parser()
    if ok:
        assert parser.parse_args(["train", "--seed", seed]).seed == int(seed)
        return
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["train", "--seed", seed])
    assert e.value.code == 2
    assert one_line(capsys.readouterr().err) == (
        f"jaxnn train: error: argument --seed: expected a non-negative integer below 2**63, "
        f"got {seed} (see jaxnn train --help)")
