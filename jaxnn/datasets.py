"""Data sets in the layout: one column per example (NumPy only).

Every loader returns a :class:`Dataset` with ``X: (n_x, m)`` and ``Y: (n_y, m)``
(formulas §1): one-hot columns for multiclass (softmax + cross-entropy), a ``(1, m)``
row of 0/1 for binary (sigmoid + BCE), a ``(1, m)`` row of standardised targets
for regression (identity + MSE). Files on disk are row-major ``(m, n_x)``
tables; the transpose happens here, once. Features (and regression targets) are
standardised with TRAINING statistics only; a feature constant on the training
set gets std 1. Nothing is downloaded: the built-in sets ship inside
scikit-learn, and MNIST-style IDX files are read from a local folder.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import NamedTuple

import numpy as np

TASKS = ("multiclass", "binary", "regression")
_PAIRING = {"multiclass": ("softmax", "cross_entropy"), "binary": ("sigmoid", "bce"),
            "regression": ("identity", "mse")}


class Dataset(NamedTuple):
    """A train/test split in the layout; arrays are read-only.

    Fields: ``X_train: (n_x, m_train)``, ``Y_train: (n_y, m_train)``,
    ``X_test: (n_x, m_test)``, ``Y_test: (n_y, m_test)``; ``task`` and the
    ``output_activation`` / ``loss`` pairing to build the Network with;
    ``x_mean, x_std: (n_x, 1)`` training statistics (``X = (raw - x_mean) / x_std``);
    ``y_mean, y_std: (n_y, 1)`` for regression (predict ``AL * y_std + y_mean``),
    None otherwise.
    """

    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    task: str
    output_activation: str
    loss: str
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray | None
    y_std: np.ndarray | None
    name: str

    n_x = property(lambda self: self.X_train.shape[0], doc="number of features")
    n_y = property(lambda self: self.Y_train.shape[0], doc="number of output units")
    m_train = property(lambda self: self.X_train.shape[1], doc="training examples")
    m_test = property(lambda self: self.X_test.shape[1], doc="test examples")


# ----------------------------------------------------------------- validation
def _check_fraction(test_fraction: float) -> None:
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got "
                         f"{test_fraction!r}; e.g. 0.2 keeps 20% of the examples for testing.")


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype (float32/float64), got {dtype}.")
    return dtype


def _as_features(features, feature_names) -> tuple[np.ndarray, tuple[str, ...]]:
    """features: (m, n_x) row-major table -> float64 array and names."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D (m, n_x) table, one ROW per example, got "
                         f"{features.shape}; for a single feature use features.reshape(-1, 1).")
    try:
        features = features.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"features must be numeric; converting to float failed: {err}") from None
    n_x = features.shape[1]
    if feature_names is None:
        feature_names = [f"x{j}" for j in range(n_x)]
    names = tuple(str(s) for s in feature_names)
    if len(names) != n_x:
        raise ValueError(f"got {len(names)} feature_names for {n_x} feature columns.")
    bad_rows, bad_cols = np.nonzero(~np.isfinite(features))
    if bad_rows.size:
        first = ", ".join(f"row {r} column {c} ({names[c]!r})={features[r, c]}"
                          for r, c in zip(bad_rows[:5], bad_cols[:5], strict=True))
        raise ValueError(f"features contain {bad_rows.size} NaN/inf value(s) in rows "
                         f"{sorted(set(bad_rows.tolist()))[:5]} (first few: {first}); drop or "
                         "impute them first, e.g. keep = np.isfinite(features).all(axis=1).")
    return features, names


def _integral(labels: np.ndarray) -> bool:
    return labels.dtype.kind != "f" or bool(np.all(np.isfinite(labels) & (labels % 1 == 0)))


def _resolve_task(labels: np.ndarray, task: str) -> str:
    if task not in (*TASKS, "auto"):
        raise ValueError(f"task must be one of {(*TASKS, 'auto')}, got {task!r}.")
    if task != "auto":
        return task
    if not _integral(labels):
        return "regression"
    return "binary" if np.unique(labels).size == 2 else "multiclass"


def _class_labels(labels: np.ndarray, task: str):
    """labels: (m,) -> (classes, integer codes (m,)); at least 2 classes."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"class labels must be a 1-D (m,) array of class ids, got shape "
                         f"{labels.shape}; for one-hot rows pass labels.argmax(axis=1).")
    if not _integral(labels):
        raise ValueError(f"task={task!r} needs integer or string class labels, got non-integer "
                         "floats (or NaN); for continuous targets use task='regression'.")
    if labels.dtype.kind == "f":
        labels = labels.astype(np.int64)
    classes, codes = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"classification needs at least 2 classes, found {classes.size} "
                         f"({classes.tolist()}); check the label column.")
    if task == "binary" and classes.size != 2:
        raise ValueError(f"task='binary' needs exactly 2 classes, found {classes.size}; "
                         "use task='multiclass' (softmax) instead.")
    return classes, codes.reshape(-1)


# ---------------------------------------------------------------- the engine
def _split(codes: np.ndarray | None, m: int, test_fraction: float, seed: int):
    """Deterministic (stratified when codes is given) split -> (train_idx, test_idx)."""
    rng = np.random.default_rng(seed)
    m_test = int(round(m * test_fraction))
    if not 1 <= m_test <= m - 1:
        raise ValueError(f"test_fraction={test_fraction} of m={m} examples gives {m_test} test "
                         "examples; both splits need one or more: change it or add data.")
    if codes is None:
        perm = rng.permutation(m)
        return perm[m_test:], perm[:m_test]
    counts = np.bincount(codes)
    if m_test > m - counts.size:
        raise ValueError(f"test_fraction={test_fraction} puts {m_test} of {m} examples in the "
                         f"test split, which would leave a class with no training example "
                         f"({counts.size} classes, smallest has {counts.min()}); lower "
                         "test_fraction, or pass task='regression' for continuous targets.")
    # Largest remainders keep each class's test share close to test_fraction, but a
    # class never gives up its last training example (m_test <= m - k makes room).
    quota = counts * m_test / m
    n_test = np.floor(quota).astype(np.int64)
    while n_test.sum() < m_test:
        n_test[np.argmax(np.where(n_test < counts - 1, quota - n_test, -np.inf))] += 1
    train, test = [], []
    for c in range(counts.size):
        idx = rng.permutation(np.flatnonzero(codes == c))
        test.append(idx[: n_test[c]])
        train.append(idx[n_test[c]:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _standardise(train: np.ndarray, test: np.ndarray):
    """train: (m_train, n) rows -> (train_std, test_std, mean (n, 1), std (n, 1)), train stats."""
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std[np.ptp(train, axis=0) == 0] = 1.0  # constant feature: centre it, don't divide by 0
    mu, sigma = mean.astype(train.dtype), std.astype(train.dtype)  # no float64 copy of MNIST
    return (train - mu) / sigma, (test - mu) / sigma, mean[:, None], std[:, None]


def _frozen(a: np.ndarray | None, dtype) -> np.ndarray | None:
    if a is None:
        return None
    a = np.ascontiguousarray(a, dtype=dtype)
    a.flags.writeable = False
    return a


def _assemble(F_train, F_test, y_train, y_test, *, task, classes, feature_names,
              class_names, dtype, name) -> Dataset:
    """Row-major pieces -> Dataset in the (n_x, m) layout.

    F_*: (m_*, n_x) float; y_*: (m_*,) class codes or (m_*, n_y) float targets.
    """
    F_train, F_test, x_mean, x_std = _standardise(F_train, F_test)
    y_mean = y_std = None
    if task == "regression":
        y_train, y_test, y_mean, y_std = _standardise(y_train, y_test)
        Y_train, Y_test = y_train.T, y_test.T
        class_names = ()
    elif task == "binary":
        Y_train, Y_test = y_train[None, :] == 1, y_test[None, :] == 1
    else:
        eye = np.arange(classes.size)[:, None]
        Y_train, Y_test = eye == y_train[None, :], eye == y_test[None, :]
    if task != "regression":
        class_names = tuple(str(c) for c in (classes if class_names is None else class_names))
        if len(class_names) != classes.size:
            raise ValueError(f"got {len(class_names)} class_names for {classes.size} classes.")
    activation, loss = _PAIRING[task]
    return Dataset(
        X_train=_frozen(F_train.T, dtype), Y_train=_frozen(Y_train, dtype),
        X_test=_frozen(F_test.T, dtype), Y_test=_frozen(Y_test, dtype),
        task=task, output_activation=activation, loss=loss,
        feature_names=tuple(feature_names), class_names=class_names,
        x_mean=_frozen(x_mean, dtype), x_std=_frozen(x_std, dtype),
        y_mean=_frozen(y_mean, dtype), y_std=_frozen(y_std, dtype), name=name,
    )


def from_arrays(features, labels, *, task: str = "auto", test_fraction: float = 0.2,
                seed: int = 0, dtype=np.float32, feature_names=None, class_names=None,
                name: str = "arrays") -> Dataset:
    """Split, standardise and transpose a row-major table into the (n_x, m) layout.

    Args:
      features: (m, n_x) table, one ROW per example (as stored on disk).
      labels: (m,) class labels (int/str) or float targets; (m, n_y) for regression.
      task: "multiclass", "binary", "regression" or "auto" (non-integer floats ->
        regression, 2 classes -> binary, otherwise multiclass).
      test_fraction: share of examples held out, in (0, 1); the split is stratified
        for classification and deterministic for a given ``seed``.
      class_names: names for the sorted unique labels (default: str of each label).

    Returns:
      Dataset with X_*: (n_x, m_*), Y_*: (n_y, m_*) where n_y = #classes
      (multiclass, one-hot columns), 1 (binary: 1 = the second sorted class) or
      the number of targets (regression, standardised with training stats).
    """
    _check_fraction(test_fraction)
    dtype = _check_dtype(dtype)
    features, feature_names = _as_features(features, feature_names)
    labels = np.asarray(labels)
    m = features.shape[0]
    if labels.shape[:1] != (m,):
        hint = (" features look transposed ((n_x, m)); pass features.T, one row per example."
                if labels.ndim and features.shape[1] == labels.shape[0] else "")
        raise ValueError(f"features have {m} rows (examples) but labels have shape "
                         f"{labels.shape}; they need one label per row.{hint}")
    task = _resolve_task(labels, task)
    classes = None
    if task == "regression":
        try:
            y = labels.astype(np.float64).reshape(m, -1)  # (m, n_y) targets
        except (TypeError, ValueError):
            raise ValueError("task='regression' needs numeric targets.") from None
        if not np.all(np.isfinite(y)):
            rows = np.flatnonzero(~np.isfinite(y).all(axis=1))
            raise ValueError(f"regression targets contain NaN/inf in rows {rows[:5].tolist()}.")
    else:
        classes, y = _class_labels(labels, task)  # y: (m,) class codes 0..k-1
    train, test = _split(None if classes is None else y, m, test_fraction, seed)
    return _assemble(features[train], features[test], y[train], y[test], task=task,
                     classes=classes, feature_names=feature_names, class_names=class_names,
                     dtype=dtype, name=name)


# ------------------------------------------------------- sklearn's built-ins
_BUILTIN = {
    "digits": ("load_digits", "multiclass", {}),
    "iris": ("load_iris", "multiclass", {}),
    "wine": ("load_wine", "multiclass", {}),
    "breast_cancer": ("load_breast_cancer", "binary", {}),
    "diabetes": ("load_diabetes", "regression", {"scaled": False}),
}


def available() -> tuple[str, ...]:
    """Names accepted by :func:`load`."""
    return tuple(_BUILTIN)


def load(name: str, *, test_fraction: float = 0.2, seed: int = 0, dtype=np.float32) -> Dataset:
    """Load a data set that ships inside scikit-learn (no download).

    "digits" (n_x=64, 10 classes), "iris" (4, 3), "wine" (13, 3) are multiclass;
    "breast_cancer" (30 features) is binary with Y: (1, m), 1 = benign as in
    sklearn's target; "diabetes" (10 raw features) is regression, Y: (1, m).
    """
    if name not in _BUILTIN:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(available())}.")
    import sklearn.datasets  # deferred: importing sklearn costs ~1 s

    loader, task, kwargs = _BUILTIN[name]
    bunch = getattr(sklearn.datasets, loader)(**kwargs)
    names = getattr(bunch, "feature_names", None)
    class_names = None if task == "regression" else [str(c) for c in bunch.target_names]
    return from_arrays(bunch.data, bunch.target, task=task, test_fraction=test_fraction,
                       seed=seed, dtype=dtype, feature_names=names, class_names=class_names,
                       name=name)


# ------------------------------------------------------------- files on disk
def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_csv(path, *, label_column: str | int, task: str = "auto", delimiter: str = ",",
             header: bool = True, test_fraction: float = 0.2, seed: int = 0,
             dtype=np.float32, name: str | None = None) -> Dataset:
    """Load a row-major CSV (one row per example) into a Dataset.

    ``label_column`` is a header name or an integer index (negative counts from
    the end); every other column must be numeric. Labels that all parse as
    numbers are numeric (see ``task="auto"`` in :func:`from_arrays`), otherwise
    they are class names.
    """
    path = Path(path)
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=delimiter) if r]
    if len(rows) <= int(header):
        raise ValueError(f"{path} has no data rows.")
    columns = [c.strip() for c in rows[0]] if header else [f"col{j}" for j in range(len(rows[0]))]
    rows = rows[int(header):]
    n_cols = len(columns)
    if isinstance(label_column, str):
        if not header:
            raise ValueError("label_column given by name needs header=True; pass its index.")
        if label_column not in columns:
            raise ValueError(f"label column {label_column!r} not in {path.name}; "
                             f"columns are {columns}.")
        j_label = columns.index(label_column)
    else:
        if not -n_cols <= int(label_column) < n_cols:
            raise ValueError(f"label column index {label_column} out of range for {n_cols} "
                             f"columns ({columns}); valid: {-n_cols}..{n_cols - 1}.")
        j_label = int(label_column) % n_cols
    table = []
    for i, r in enumerate(rows):
        if len(r) != n_cols:
            raise ValueError(f"{path.name} data row {i} has {len(r)} fields, expected {n_cols}.")
        table.append([s.strip() for s in r])
    cells = np.array(table, dtype=str)
    raw_labels = cells[:, j_label]
    keep = [j for j in range(n_cols) if j != j_label]
    try:
        features = cells[:, keep].astype(np.float64)
    except ValueError:
        i, j = next((i, j) for i, r in enumerate(cells) for j in keep if not _is_number(r[j]))
        raise ValueError(f"{path.name} data row {i}, column {columns[j]!r}: {str(cells[i, j])!r} "
                         "is not a number; feature columns must be numeric.") from None
    numeric = all(_is_number(s) for s in raw_labels)
    labels = raw_labels.astype(np.float64) if numeric else raw_labels
    return from_arrays(features, labels, task=task, test_fraction=test_fraction, seed=seed,
                       dtype=dtype, feature_names=[columns[j] for j in keep],
                       name=path.stem if name is None else name)


def load_npz(path, *, features_key: str = "X", labels_key: str = "y", task: str = "auto",
             test_fraction: float = 0.2, seed: int = 0, dtype=np.float32,
             name: str | None = None) -> Dataset:
    """Load ``features: (m, n_x)`` and ``labels: (m,)`` from a ``.npz`` (no pickle).

    An optional ``feature_names`` array in the file names the columns.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            for key in (features_key, labels_key):
                if key not in keys:
                    raise ValueError(f"{path.name} has no array {key!r}; arrays: {keys}. "
                                     "Pass features_key=/labels_key= to pick them.")
            features, labels = npz[features_key], npz[labels_key]
            names = npz["feature_names"] if "feature_names" in keys else None
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"{path.name} holds object arrays, which are not loaded (no "
                             "pickle); save numeric / fixed-width string arrays.") from None
        raise
    return from_arrays(features, labels, task=task, test_fraction=test_fraction, seed=seed,
                       dtype=dtype, feature_names=names,
                       name=path.stem if name is None else name)


# ------------------------------------------------------------------ IDX files
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_CLASSES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


def read_idx(path) -> np.ndarray:
    """Read one IDX file (plain or gzip) into an array of its native shape.

    Header: 2 zero bytes, a dtype code (0x08 uint8 ... 0x0E float64), the number
    of dims, then each dim as a big-endian uint32; the data follow big-endian.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"{path.name}: bad IDX magic number {raw[:4].hex() or '(empty)'}; "
                         "expected 00 00 <dtype 08/09/0b/0c/0d/0e> <ndim>. Is it really an IDX "
                         "file (plain or .gz), not an HTML page or a truncated download?")
    ndim, dt = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    dims = np.frombuffer(raw, ">u4", ndim, 4) if len(raw) >= 4 + 4 * ndim else np.array([-1])
    expected = 4 + 4 * ndim + int(np.prod(dims.astype(np.int64))) * dt.itemsize
    if dims.min() < 0 or len(raw) != expected:
        raise ValueError(f"{path.name}: header says dims {dims.tolist()} ({expected} bytes) "
                         f"but the file has {len(raw)} bytes; it is truncated or corrupt.")
    data = np.frombuffer(raw, dtype=dt, offset=4 + 4 * ndim).reshape(dims.astype(np.int64))
    return data.astype(dt.newbyteorder("="))


def _find_idx(folder: Path, base: str) -> Path:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{base} (or {base}.gz) not found in {folder}. load_idx never "
                            f"downloads: put the four files {', '.join(_IDX_FILES)} "
                            "(optionally .gz) in that folder.")


def load_idx(folder, *, kind: str = "mnist", dtype=np.float32,
             name: str | None = None) -> Dataset:
    """Load MNIST / Fashion-MNIST IDX files from a local folder (official split).

    Pixels are scaled to [0, 1] and then standardised with training stats.
    Returns X_*: (784, m_*) and one-hot Y_*: (10, m_*) (60000 / 10000 for the
    full sets).
    """
    if kind not in _IDX_CLASSES:
        raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(_IDX_CLASSES)}.")
    dtype = _check_dtype(dtype)
    folder = Path(folder)
    img_tr, lab_tr, img_te, lab_te = (read_idx(_find_idx(folder, b)) for b in _IDX_FILES)
    parts = []
    for split, images, labels in (("train", img_tr, lab_tr), ("t10k", img_te, lab_te)):
        if images.ndim < 2 or labels.ndim != 1 or not 0 < images.shape[0] == labels.shape[0]:
            raise ValueError(f"{split}: images {images.shape} and labels {labels.shape} do "
                             "not match: need (m, rows, cols) images and (m,) labels.")
        if labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"{split} labels must be 0..9, found {labels.min()}..{labels.max()}.")
        parts.append(images.reshape(images.shape[0], -1).astype(dtype) / dtype.type(255))
        parts.append(labels.astype(np.int64))
    if parts[0].shape[1] != parts[2].shape[1]:
        raise ValueError(f"train images have {parts[0].shape[1]} pixels, test images "
                         f"{parts[2].shape[1]}; they must be the same size.")
    return _assemble(parts[0], parts[2], parts[1], parts[3], task="multiclass",
                     classes=np.arange(10), feature_names=[f"pixel{j}" for j in range(
                         parts[0].shape[1])], class_names=_IDX_CLASSES[kind], dtype=dtype,
                     name=kind if name is None else name)
