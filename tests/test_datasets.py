"""Tests of jaxnn.datasets: layout (n_x, m), train-only statistics, splits, files, errors."""

import csv
import gzip
import subprocess
import sys

import numpy as np
import pytest
import sklearn.datasets
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jaxnn import datasets

SIZES = {  # name: (n_x, n_y, m, task)
    "digits": (64, 10, 1797, "multiclass"),
    "iris": (4, 3, 150, "multiclass"),
    "wine": (13, 3, 178, "multiclass"),
    "breast_cancer": (30, 1, 569, "binary"),
    "diabetes": (10, 1, 442, "regression"),
}
RAW = {
    "digits": sklearn.datasets.load_digits,
    "iris": sklearn.datasets.load_iris,
    "wine": sklearn.datasets.load_wine,
    "breast_cancer": sklearn.datasets.load_breast_cancer,
    "diabetes": lambda: sklearn.datasets.load_diabetes(scaled=False),
}


@pytest.fixture(scope="module")
def loaded():
    return {name: datasets.load(name) for name in datasets.available()}


def _raw_rows(ds, X):
    """Undo the standardisation: X: (n_x, m) -> raw (m, n_x) rows."""
    return (X.astype(np.float64) * ds.x_std + ds.x_mean).T


def _labels(ds, Y):
    if ds.task == "multiclass":
        return Y.argmax(axis=0)
    if ds.task == "binary":
        return Y[0].astype(int)
    return Y[0].astype(np.float64) * ds.y_std[0, 0] + ds.y_mean[0, 0]


# ------------------------------------------------------------------ built-ins
def test_available_lists_all():
    assert datasets.available() == tuple(SIZES)


@pytest.mark.parametrize("name", list(SIZES))
def test_builtin_shapes_layout_pairing(loaded, name):
    ds = loaded[name]
    n_x, n_y, m, task = SIZES[name]
    assert (ds.n_x, ds.n_y, ds.m_train + ds.m_test) == (n_x, n_y, m)
    assert ds.m_test == round(0.2 * m)
    assert ds.X_train.shape == (n_x, ds.m_train) and ds.X_test.shape == (n_x, ds.m_test)
    assert ds.Y_train.shape == (n_y, ds.m_train) and ds.Y_test.shape == (n_y, ds.m_test)
    assert ds.x_mean.shape == ds.x_std.shape == (n_x, 1)
    assert len(ds.feature_names) == n_x and ds.name == name and ds.task == task
    pairing = {"multiclass": ("softmax", "cross_entropy"), "binary": ("sigmoid", "bce"),
               "regression": ("identity", "mse")}[task]
    assert (ds.output_activation, ds.loss) == pairing
    for a in (ds.X_train, ds.Y_train, ds.X_test, ds.Y_test):
        assert a.dtype == np.float32 and np.all(np.isfinite(a)) and not a.flags.writeable
    if task == "multiclass":
        for Y in (ds.Y_train, ds.Y_test):
            assert set(np.unique(Y)) == {0.0, 1.0}
            np.testing.assert_array_equal(Y.sum(axis=0), np.ones(Y.shape[1]))
        assert len(ds.class_names) == n_y and ds.y_mean is None and ds.y_std is None
    elif task == "binary":
        assert set(np.unique(ds.Y_train)) == {0.0, 1.0}
        assert ds.class_names == ("malignant", "benign")
    else:
        assert ds.class_names == () and ds.y_mean.shape == ds.y_std.shape == (1, 1)
        # targets standardised with training stats
        assert abs(ds.Y_train.mean()) < 1e-5 and abs(ds.Y_train.std() - 1) < 1e-5


@pytest.mark.parametrize("name", list(SIZES))
def test_examples_are_columns_and_stay_with_their_labels(loaded, name):
    """Rebuild every (row, label) pair of the sklearn table from the columns."""
    ds, raw = loaded[name], RAW[name]()
    rows = np.concatenate([_raw_rows(ds, ds.X_train), _raw_rows(ds, ds.X_test)])
    labels = np.concatenate([_labels(ds, ds.Y_train), _labels(ds, ds.Y_test)])
    key = np.lexsort(rows.T[::-1])
    key_raw = np.lexsort(raw.data.T[::-1])
    np.testing.assert_allclose(rows[key], raw.data[key_raw], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(labels[key], raw.target[key_raw], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("name", list(SIZES))
def test_training_statistics_only(loaded, name):
    ds, raw = loaded[name], RAW[name]()
    train_rows = _raw_rows(ds, ds.X_train)
    np.testing.assert_allclose(ds.x_mean[:, 0], raw.data.mean(axis=0), rtol=0.1, atol=0.5)
    np.testing.assert_allclose(ds.x_mean[:, 0], train_rows.mean(axis=0), rtol=1e-5, atol=1e-5)
    varying = np.ptp(train_rows, axis=0) > 0
    np.testing.assert_allclose(ds.X_train.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.std(axis=1)[varying], 1, atol=1e-4)
    # the test set is standardised with the training stats, so it is not exactly (0, 1)
    assert np.abs(ds.X_test.mean(axis=1)).max() > 1e-2
    assert np.abs(ds.X_test.std(axis=1)[varying] - 1).max() > 1e-2
    # x_std is the training std, not the whole-set one
    assert not np.allclose(ds.x_std[varying, 0], raw.data.std(axis=0)[varying], rtol=1e-6)


def test_constant_features_get_std_one(loaded):
    ds = loaded["digits"]
    constant = np.ptp(_raw_rows(ds, ds.X_train), axis=0) == 0
    assert constant.sum() >= 2  # digits has all-zero border pixels
    np.testing.assert_array_equal(ds.x_std[constant, 0], 1.0)
    np.testing.assert_array_equal(ds.X_train[constant], 0.0)


def test_split_deterministic_per_seed():
    a, b, c = (datasets.load("wine", seed=s) for s in (3, 3, 4))
    for f in ("X_train", "Y_train", "X_test", "Y_test", "x_mean", "x_std"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert a.X_test.shape == c.X_test.shape and not np.array_equal(a.X_test, c.X_test)


@pytest.mark.parametrize("name", ["iris", "wine", "digits", "breast_cancer"])
def test_stratified(loaded, name):
    ds, raw = loaded[name], RAW[name]()
    counts = np.bincount(raw.target)
    test_counts = ds.Y_test.sum(axis=1) if ds.task == "multiclass" else np.array(
        [ds.m_test - ds.Y_test.sum(), ds.Y_test.sum()])
    # each class within one example of its exact share of the test split
    assert np.abs(test_counts - counts * ds.m_test / counts.sum()).max() < 1.0 + 1e-9
    if name == "iris":
        np.testing.assert_array_equal(test_counts, [10, 10, 10])


def test_test_fraction_changes_sizes():
    ds = datasets.load("iris", test_fraction=0.5, dtype=np.float64)
    assert (ds.m_train, ds.m_test) == (75, 75) and ds.X_train.dtype == np.float64


def test_dataset_is_immutable(loaded):
    ds = loaded["iris"]
    with pytest.raises(AttributeError):
        ds.X_train = None
    with pytest.raises(ValueError, match="read-only"):
        ds.X_train[0, 0] = 1.0


# ---------------------------------------------------------------- from_arrays
def test_from_arrays_auto_tasks_and_binary_coding():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(40, 3))
    reg = datasets.from_arrays(F, rng.normal(size=40), task="auto")
    assert reg.task == "regression" and reg.n_y == 1 and reg.loss == "mse"
    labels = np.array(["no", "yes"] * 20)
    binary = datasets.from_arrays(F, labels, task="auto", feature_names=["a", "b", "c"])
    assert binary.task == "binary" and binary.class_names == ("no", "yes")
    assert binary.feature_names == ("a", "b", "c")
    # Y = 1 exactly for "yes" rows: feature 0 is the row index, so recover it
    F_idx = np.column_stack([np.arange(40.0), F])
    coded = datasets.from_arrays(F_idx, labels, task="binary")
    for X, Y in ((coded.X_train, coded.Y_train), (coded.X_test, coded.Y_test)):
        rows = np.round(_raw_rows(coded, X)[:, 0]).astype(int)
        np.testing.assert_array_equal(Y[0], labels[rows] == "yes")
    multi = datasets.from_arrays(F, np.arange(40) % 4 * 1.0, task="auto")
    assert multi.task == "multiclass" and multi.class_names == ("0", "1", "2", "3")
    assert multi.Y_train.shape == (4, 32)


def test_from_arrays_multi_target_regression():
    rng = np.random.default_rng(1)
    F, T = rng.normal(size=(30, 2)), rng.normal(3.0, 5.0, size=(30, 2))
    ds = datasets.from_arrays(F, T, task="regression", seed=2)
    assert ds.Y_train.shape == (2, 24) and ds.y_mean.shape == (2, 1)
    np.testing.assert_allclose(ds.Y_train.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(ds.Y_train.std(axis=1), 1, atol=1e-5)


# --------------------------------------------------------------- bad inputs
def _iris():
    raw = sklearn.datasets.load_iris()
    return raw.data.copy(), raw.target.copy()


def test_error_nan_inf_features_name_rows_and_columns():
    F, y = _iris()
    F[7, 2], F[11, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"2 NaN/inf.*rows \[7, 11\].*row 7 column 2"):
        datasets.from_arrays(F, y, task="multiclass")


def test_error_mismatched_lengths_and_transposed():
    F, y = _iris()
    with pytest.raises(ValueError, match="150 rows.*labels have shape \\(149,\\)"):
        datasets.from_arrays(F, y[:-1], task="multiclass")
    with pytest.raises(ValueError, match="transposed.*features.T"):
        datasets.from_arrays(F.T, y, task="multiclass")


def test_error_fewer_than_two_classes():
    F, _ = _iris()
    with pytest.raises(ValueError, match="at least 2 classes, found 1"):
        datasets.from_arrays(F, np.zeros(150, int), task="auto")


def test_error_binary_with_three_classes():
    F, y = _iris()
    with pytest.raises(ValueError, match="exactly 2 classes, found 3"):
        datasets.from_arrays(F, y, task="binary")


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_error_test_fraction_out_of_range(frac):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        datasets.load("iris", test_fraction=frac)


def test_error_class_without_training_example():
    F = np.arange(12.0).reshape(6, 2)
    y = np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="no training example"):
        datasets.from_arrays(F, y, task="multiclass", test_fraction=0.6)
    # a smaller fraction keeps every class in training
    ds = datasets.from_arrays(F, y, task="multiclass", test_fraction=0.5)
    np.testing.assert_array_equal(ds.Y_train.sum(axis=1), [1, 1, 1])


def test_error_unknown_name_and_task():
    with pytest.raises(ValueError, match="unknown data set 'mnist'.*digits, iris, wine"):
        datasets.load("mnist")
    F, y = _iris()
    with pytest.raises(ValueError, match="task must be one of .*'classification'.*got 'clustering'"):
        datasets.from_arrays(F, y, task="clustering")


# ---------------------------------------------------------------- CSV / NPZ
def _write_iris_csv(path, label_first=False):
    raw = sklearn.datasets.load_iris()
    names = [n.replace(" (cm)", "") for n in raw.feature_names]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        header = ["species", *names] if label_first else [*names, "species"]
        w.writerow(header)
        for row, t in zip(raw.data, raw.target, strict=True):
            label = raw.target_names[t]
            w.writerow([label, *row] if label_first else [*row, label])
    return raw, names


@pytest.mark.parametrize("label_column", ["species", -1, 4])
def test_csv_round_trip(tmp_path, label_column):
    raw, names = _write_iris_csv(tmp_path / "iris.csv")
    ds = datasets.load_csv(tmp_path / "iris.csv", label_column=label_column, seed=5)
    ref = datasets.from_arrays(raw.data, raw.target_names[raw.target], task="multiclass",
                               seed=5)
    assert ds.task == "multiclass" and ds.name == "iris"
    assert ds.feature_names == tuple(names)
    assert ds.class_names == ("setosa", "versicolor", "virginica")
    for f in ("X_train", "Y_train", "X_test", "Y_test", "x_mean", "x_std"):
        np.testing.assert_array_equal(getattr(ds, f), getattr(ref, f))


def test_csv_label_first_no_header_numeric_labels(tmp_path):
    path = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    F, y = rng.normal(size=(50, 3)), np.arange(50) % 2
    np.savetxt(path, np.column_stack([y, F]), delimiter=";")
    ds = datasets.load_csv(path, label_column=0, header=False, delimiter=";")
    ref = datasets.from_arrays(F, y, task="binary")
    assert ds.task == "binary" and ds.class_names == ("0", "1")
    assert ds.feature_names == ("col1", "col2", "col3")
    np.testing.assert_allclose(ds.X_train, ref.X_train, atol=1e-6)
    np.testing.assert_array_equal(ds.Y_train, ref.Y_train)


def test_csv_errors(tmp_path):
    path = tmp_path / "iris.csv"
    _write_iris_csv(path)
    with pytest.raises(ValueError, match=r"'label' not in iris.csv; columns are \['sepal"):
        datasets.load_csv(path, label_column="label")
    with pytest.raises(ValueError, match=r"index 5 out of range for 5 columns.*-5\.\.4"):
        datasets.load_csv(path, label_column=5)
    with pytest.raises(ValueError, match="needs header=True"):
        datasets.load_csv(path, label_column="species", header=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,0\n3,oops,1\n4,nan,1\n")
    with pytest.raises(ValueError, match=r"bad\.csv line 3, column 'b': 'oops' is not a number"):
        datasets.load_csv(bad, label_column="y")
    bad.write_text("a,b,y\n1,2,0\n3,4,1\n4,nan,1\n5,6,0\n")
    with pytest.raises(ValueError, match=r"bad\.csv line 4, column 'b': 'nan' is not a finite "
                                         r"number \(1 NaN/inf cells in all\)"):
        datasets.load_csv(bad, label_column="y")
    bad.write_text("a,b,y\n1,2,0\n3,4\n")
    with pytest.raises(ValueError, match="bad.csv line 3 has 2 fields, expected 3 as on line 1: "
                                         "nothing for column 'y'"):
        datasets.load_csv(bad, label_column="y")


def test_npz_round_trip_and_keys(tmp_path):
    raw = sklearn.datasets.load_wine()
    path = tmp_path / "wine.npz"
    np.savez(path, X=raw.data, y=raw.target, feature_names=np.array(raw.feature_names))
    ds = datasets.load_npz(path, seed=1)
    ref = datasets.from_arrays(raw.data, raw.target, task="multiclass", seed=1)
    assert ds.feature_names == tuple(raw.feature_names) and ds.name == "wine"
    for f in ("X_train", "Y_train", "X_test", "Y_test"):
        np.testing.assert_array_equal(getattr(ds, f), getattr(ref, f))
    other = tmp_path / "other.npz"
    np.savez(other, inputs=raw.data, target=raw.target.astype(float) + 0.5)
    reg = datasets.load_npz(other, features_key="inputs", labels_key="target")
    assert reg.task == "regression"
    with pytest.raises(ValueError, match=r"no array 'X'; arrays: \['inputs', 'target'\]"):
        datasets.load_npz(other)


# ----------------------------------------------------------------------- IDX
_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
          np.float32: 0x0D, np.float64: 0x0E}


def _write_idx(path, array, gz=False):
    array = np.asarray(array)
    header = bytes([0, 0, _CODES[array.dtype.type], array.ndim])
    dims = np.array(array.shape, dtype=">u4").tobytes()
    data = header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("dtype", list(_CODES))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(5, 3, 4)) * 20).astype(dtype)
    path = _write_idx(tmp_path / "a-idx3", a, gz=gz)
    out = datasets.read_idx(path)
    assert out.shape == (5, 3, 4) and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, a)


def _mnist_folder(folder, gz, m_train=20, m_test=8):
    rng = np.random.default_rng(42)
    imgs = {s: rng.integers(0, 256, size=(m, 28, 28), dtype=np.uint8)
            for s, m in (("train", m_train), ("t10k", m_test))}
    labs = {"train": np.arange(m_train, dtype=np.uint8) % 10,
            "t10k": np.arange(m_test, dtype=np.uint8) % 10}
    for s in ("train", "t10k"):
        _write_idx(folder / f"{s}-images-idx3-ubyte", imgs[s], gz=gz)
        _write_idx(folder / f"{s}-labels-idx1-ubyte", labs[s], gz=gz)
    return imgs, labs


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx(tmp_path, gz):
    imgs, labs = _mnist_folder(tmp_path, gz)
    ds = datasets.load_idx(tmp_path, kind="fashion_mnist")
    assert ds.X_train.shape == (784, 20) and ds.Y_train.shape == (10, 20)
    assert ds.X_test.shape == (784, 8) and ds.Y_test.shape == (10, 8)
    assert ds.class_names[0] == "T-shirt/top" and ds.loss == "cross_entropy"
    # official split kept in order; pixels scaled to [0, 1] then standardised
    np.testing.assert_array_equal(ds.Y_train.argmax(axis=0), labs["train"])
    np.testing.assert_array_equal(ds.Y_test.argmax(axis=0), labs["t10k"])
    pixels = imgs["train"].reshape(20, 784).T / 255.0
    np.testing.assert_allclose(ds.x_mean[:, 0], pixels.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(ds.x_std[:, 0], pixels.std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(ds.X_train * ds.x_std + ds.x_mean, pixels, atol=1e-5)
    test_pixels = imgs["t10k"].reshape(8, 784).T / 255.0
    np.testing.assert_allclose(ds.X_test * ds.x_std + ds.x_mean, test_pixels, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.mean(axis=1), 0, atol=1e-5)


def test_idx_errors(tmp_path):
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*never downloads"):
        datasets.load_idx(tmp_path)
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="bad IDX magic number 3c68746d"):
        datasets.read_idx(bad)
    bad.write_bytes(bytes([0, 0, 0x08, 1]) + np.array([10], ">u4").tobytes() + bytes(4))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        datasets.read_idx(bad)
    _mnist_folder(tmp_path, gz=False)
    with pytest.raises(ValueError, match="unknown kind 'emnist'"):
        datasets.load_idx(tmp_path, kind="emnist")
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(7, np.uint8))
    with pytest.raises(ValueError, match=r"t10k: images \(8, 28, 28\) and labels \(7,\)"):
        datasets.load_idx(tmp_path)


def test_idx_header_cut_short(tmp_path):
    bad = tmp_path / "short-idx"
    bad.write_bytes(bytes([0, 0, 0x08, 3]) + np.array([2], ">u4").tobytes())
    with pytest.raises(ValueError, match="truncated or corrupt"):
        datasets.read_idx(bad)


# ------------------------------------------------------- split as a property
@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 12), min_size=2, max_size=5),
       frac=st.floats(0.1, 0.5), seed=st.integers(0, 2**31 - 1))
def test_stratified_split_is_a_partition(counts, frac, seed):
    codes = np.repeat(np.arange(len(counts)), counts)
    m = codes.size
    m_test = round(m * frac)
    assume(1 <= m_test <= m - len(counts))
    F = np.column_stack([np.arange(m, dtype=float), np.ones(m)])  # feature 0 = row index
    ds = datasets.from_arrays(F, codes, task="multiclass", test_fraction=frac, seed=seed,
                              dtype=np.float64)
    rows = {k: np.round(_raw_rows(ds, getattr(ds, f"X_{k}"))[:, 0]).astype(int)
            for k in ("train", "test")}
    np.testing.assert_array_equal(np.sort(np.concatenate([rows["train"], rows["test"]])),
                                  np.arange(m))
    assert rows["test"].size == m_test
    np.testing.assert_array_equal(ds.Y_train.argmax(axis=0), codes[rows["train"]])
    np.testing.assert_array_equal(ds.Y_test.argmax(axis=0), codes[rows["test"]])
    train_counts, test_counts = ds.Y_train.sum(axis=1), ds.Y_test.sum(axis=1)
    assert train_counts.min() >= 1  # every class is seen in training
    share = np.array(counts) * m_test / m
    # no class gets less than the floor of its exact share of the test split, and one gets
    # more than the ceiling only when every class still below its ceiling is down to its
    # last training example (e.g. counts [1, 1, 1, 6] at 0.5: the 6 must give 4)
    assert np.all(test_counts >= np.floor(share))
    if np.any(test_counts > np.ceil(share)):
        assert not np.any((test_counts < np.ceil(share)) & (train_counts > 1))


# ------------------------------------------------- files verified, not trusted
def _csv(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n"


@pytest.mark.parametrize("text, message", [
    ("a,b,y\n1,2,0\n3,,1\n5,6,0\n", r"t\.csv line 3, column 'b': empty cell; fill it in"),
    ("a,b,y\n1,2,0\n\n3,4,\n5,6,0\n", r"t\.csv line 4, column 'y' \(the label column\): empty "
                                      "label; every row needs one"),
    ("a,b,y\n1,2,0\n3,4,1,9\n", r"line 3 has 4 fields, expected 3 as on line 1: 1 field\(s\) "
                                "after the last column 'y'"),
    ("a;b;y\n1;2;0\n3;4;1\n", r"t\.csv line 1 is a single column with delimiter=',' "
                              r"\('a;b;y'\).* It contains ';': pass delimiter=';'"),
    ("a,b,y\n1,inf,0\n3,4,1\n", r"line 2, column 'b': 'inf' is not a finite number"),
    ("a,b,y\n1,2,0\n3,4,nan\n5,6,1\n", r"line 3, column 'y' \(the label column\): 'nan' is not "
                                       "a finite label"),
    ("", r"t\.csv is empty: no rows"),
    ("a,b,y\n", r"t\.csv has a header line but no data rows"),
])
def test_csv_bad_files_name_line_and_column(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        datasets.load_csv(_csv(tmp_path, text), label_column="y")


def test_csv_path_delimiter_and_encoding_errors(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.csv does not exist"):
        datasets.load_csv(tmp_path / "missing.csv", label_column="y")
    with pytest.raises(ValueError, match=rf"{tmp_path.name} is a folder, not a file"):
        datasets.load_csv(tmp_path, label_column="y")
    (tmp_path / "b.csv").write_bytes(b"PK\x03\x04\xff\xfe\x00binary")
    with pytest.raises(ValueError, match=r"b\.csv is not a UTF-8 text file"):
        datasets.load_csv(tmp_path / "b.csv", label_column="y")
    with pytest.raises(ValueError, match=r"delimiter must be one character.*got ';;'"):
        datasets.load_csv(_csv(tmp_path, GOOD), label_column="y", delimiter=";;")
    with pytest.raises(ValueError, match="label_column must be a column name or an integer"):
        datasets.load_csv(_csv(tmp_path, GOOD), label_column=1.0)


def test_csv_label_column_and_task(tmp_path):
    path = _csv(tmp_path, "a,b,grade\n" + "".join(f"{i},{i % 3},{i % 5}\n" for i in range(30)))
    auto = datasets.load_csv(path, label_column="grade")
    assert (auto.label_column, auto.task, auto.kind, auto.n_y) == (
        "grade", "multiclass", "classification", 5)
    reg = datasets.load_csv(path, label_column=-1, task="regression")
    assert (reg.label_column, reg.task, reg.kind, reg.n_y) == ("grade", "regression",
                                                                "regression", 1)
    assert reg.feature_names == ("a", "b") and reg.y_mean is not None
    cls = datasets.load_csv(path, label_column="b", task="classification")
    assert (cls.label_column, cls.task, cls.n_y, cls.feature_names) == (
        "b", "multiclass", 3, ("a", "grade"))
    none = datasets.load_csv(path, label_column=2, task=None)
    assert none.task == "multiclass"
    no_header = _csv(tmp_path, "".join(f"{i % 2},{i},{i * 0.5 + 0.25}\n" for i in range(20)),
                     "n.csv")
    ds = datasets.load_csv(no_header, label_column=-1, header=False)
    assert (ds.label_column, ds.task, ds.kind) == ("col2", "regression", "regression")
    ds = datasets.load_csv(no_header, label_column=0, header=False, task="classification")
    assert (ds.label_column, ds.task) == ("col0", "binary")
    with pytest.raises(ValueError, match="task='classification' needs integer or string class"):
        datasets.load_csv(no_header, label_column=2, header=False, task="classification")
    words = _csv(tmp_path, "a,b,y\n1,2,cat\n3,4,dog\n5,6,cat\n", "w.csv")
    with pytest.raises(ValueError, match=r"w\.csv line 2, column 'y' \(the label column\): 'cat' "
                                         "is not a number, and task='regression' needs numeric"):
        datasets.load_csv(words, label_column="y", task="regression")


def test_npz_files_of_another_kind(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match=r"a\.npy is a \.npy file \(one array\), not an \.npz "
                                         r"archive.*np\.savez\(path, X=features, y=labels\)"):
        datasets.load_npz(tmp_path / "a.npy")
    with pytest.raises(ValueError, match=r"t\.csv is a text file \(b'a,b,y\\n1,2.*not an \.npz "
                                         "archive; for a CSV use jaxnn.datasets.load_csv"):
        datasets.load_npz(_csv(tmp_path, GOOD))
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"e\.npz is empty \(0 bytes\)"):
        datasets.load_npz(tmp_path / "e.npz")
    (tmp_path / "g.npz").write_bytes(gzip.compress(b"data"))
    with pytest.raises(ValueError, match=r"g\.npz is gzip-compressed, not an \.npz"):
        datasets.load_npz(tmp_path / "g.npz")
    (tmp_path / "r.npz").write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match=r"r\.npz is not an \.npz \(zip\) archive: it starts"):
        datasets.load_npz(tmp_path / "r.npz")
    good = tmp_path / "good.npz"
    np.savez(good, X=rng.normal(size=(10, 3)), y=np.arange(10) % 2)
    assert datasets.load_npz(good).label_column == "y"
    data = good.read_bytes()
    for n in (10, len(data) // 2, len(data) - 5):
        (tmp_path / "cut.npz").write_bytes(data[:n])
        with pytest.raises(ValueError, match=r"cut\.npz is corrupt or truncated"):
            datasets.load_npz(tmp_path / "cut.npz")
    with pytest.raises(ValueError, match=r"nope\.npz does not exist"):
        datasets.load_npz(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="is a folder, not a file"):
        datasets.load_npz(tmp_path)
    F = rng.normal(size=(10, 3))
    F[4, 2] = np.nan
    np.savez(good, X=F, y=np.arange(10) % 2)
    with pytest.raises(ValueError, match=r"NaN/inf .* row 4 column 2 \('x2'\)=nan"):
        datasets.load_npz(good)


def test_idx_truncated_gzip_and_bad_paths(tmp_path):
    _mnist_folder(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: the gzip data are "
                                         "truncated or corrupt.*download the file again"):
        datasets.load_idx(tmp_path)
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: the gzip data are"):
        datasets.read_idx(path)
    with pytest.raises(ValueError, match=r"nowhere does not exist; pass the folder holding"):
        datasets.load_idx(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"\.gz is a file, not a folder"):
        datasets.load_idx(path)
    with pytest.raises(ValueError, match=r"nope-idx does not exist"):
        datasets.read_idx(tmp_path / "nope-idx")


def test_idx_float_pixels_with_nan_and_float_labels(tmp_path):
    _mnist_folder(tmp_path, gz=False)
    images = np.zeros((20, 28, 28), np.float32)
    images[3, 5, 6] = np.nan
    _write_idx(tmp_path / "train-images-idx3-ubyte", images)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte holds NaN or inf: first in "
                                         r"column 3 \(example 3\), row 146"):
        datasets.load_idx(tmp_path)
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((20, 28, 28), np.uint8))
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(20, 2.5, np.float32))
    with pytest.raises(ValueError, match="train labels must be integers 0..9, found 2.5..2.5"):
        datasets.load_idx(tmp_path)


def test_import_jaxnn_does_not_import_sklearn():
    code = ("import sys, jaxnn; bad = sorted(m for m in sys.modules if m.startswith('sklearn'));"
            " print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------- only real numbers, unique names, no NUL (issue 20 item 7)
@pytest.mark.parametrize("text, message", [
    ("a,b,a\n1,2,0\n3,4,1\n", r"t\.csv line 1, column 3: the header name 'a' is also column 1's; "
                              r"column names must be unique .*rename one"),
    ("a,b,y\n1,2,0\n3,4\x00,1\n5,6,0\n", r"t\.csv line 3, column 2: the cell '4\\x00' holds a NUL "
                                         r"byte \(\\x00\), which would be dropped silently"),
    ("a,b,y\n1,2,0\n3,4,1\n\x005,6,0\n", r"t\.csv line 4, column 1: the cell '\\x005' holds a NUL"),
    ("a,b\x00,y\n1,2,0\n3,4,1\n", r"t\.csv line 1, column 2: the cell 'b\\x00' holds a NUL byte"),
])
def test_csv_duplicate_names_and_nul_bytes_are_refused(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        datasets.load_csv(_csv(tmp_path, text), label_column="y")


def test_csv_without_header_may_repeat_values_in_line_1(tmp_path):
    ds = datasets.load_csv(_csv(tmp_path, "1,1,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n"), label_column=-1,
                           header=False)
    assert ds.feature_names == ("col0", "col1")


FEATURES = np.arange(20.0).reshape(10, 2)
LABELS = np.arange(10) % 2


@pytest.mark.parametrize("features, labels, message", [
    (FEATURES + 1j, LABELS, r"features has dtype complex128: .*drop the imaginary part\. Pass "
                            r"features\.real"),
    (FEATURES.astype("datetime64[D]"), LABELS, r"features has dtype datetime64\[D\] \(dates or "
                                               r"durations\).*np\.timedelta64\(1, 'D'\)"),
    (FEATURES.astype("timedelta64[s]"), LABELS, r"features has dtype timedelta64\[s\]"),
    (FEATURES.astype(object), LABELS, r"features is an array of Python objects .*"
                                      r"np\.asarray\(features, dtype=float\)"),
    (FEATURES, LABELS + 0j, r"labels has dtype complex128: .*labels\.real"),
    (FEATURES, LABELS.astype("datetime64[Y]"), r"labels has dtype datetime64\[Y\]"),
    (FEATURES, np.array([0, 1, None, 1, 0, 1, 0, 1, 0, 1], object),
     r"labels is an array of Python objects \(dtype object, e\.g\. None at \(2,\)\)"),
])
def test_from_arrays_refuses_what_is_not_a_real_number(features, labels, message):
    with pytest.raises(ValueError, match=message):
        datasets.from_arrays(features, labels)


def test_object_labels_of_strings_are_class_names():
    names = np.array(["cat", "dog"] * 5)
    as_object = datasets.from_arrays(FEATURES, names.astype(object))  # e.g. a pandas column
    as_str = datasets.from_arrays(FEATURES, names)
    assert as_object.class_names == as_str.class_names == ("cat", "dog")
    assert np.array_equal(as_object.Y_train, as_str.Y_train)


@pytest.mark.parametrize("arrays, message", [
    ({"X": FEATURES + 1j, "y": LABELS}, r"features has dtype complex128"),
    ({"X": FEATURES.astype("datetime64[D]"), "y": LABELS}, r"features has dtype datetime64\[D\]"),
    ({"X": FEATURES, "y": LABELS.astype("timedelta64[D]")}, r"labels has dtype timedelta64\[D\]"),
])
def test_load_npz_refuses_what_is_not_a_real_number(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        datasets.load_npz(tmp_path / "d.npz")
