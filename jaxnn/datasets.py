"""Data sets in the layout: one column per example (NumPy arrays).

Every loader returns a :class:`Dataset` with ``X: (n_x, m)`` and ``Y: (n_y, m)``
(formulas §1): one-hot columns for multiclass (softmax + cross-entropy), a ``(1, m)``
row of 0/1 for binary (sigmoid + BCE), a ``(1, m)`` row of standardised targets
for regression (identity + MSE). Files on disk are row-major ``(m, n_x)``
tables; the transpose happens here, once. Features (and regression targets) are
standardised with TRAINING statistics only; a feature constant on the training
set gets std 1. Nothing is downloaded: the built-in sets ship inside
scikit-learn (imported only when :func:`load` runs), and MNIST-style IDX files
are read from a local folder.

Files are verified, not trusted: a missing file, a folder where a file is
expected, a missing or empty cell, a ragged row, a wrong delimiter, NaN/inf, a
file of another kind or a truncated one raises ``ValueError`` naming the file
(for a CSV also the 1-based line and the column) and what to do.
"""

from __future__ import annotations

import csv
import gzip
import math
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxnn.validation import first_bad_column

TASKS = ("multiclass", "binary", "regression")
# what task= also accepts: infer it, or say only classification vs regression
_TASK_ALIASES = (None, "auto", "classification")
_PAIRING = {"multiclass": ("softmax", "cross_entropy"), "binary": ("sigmoid", "bce"),
            "regression": ("identity", "mse")}


class Dataset(NamedTuple):
    """A train/test split in the layout; arrays are read-only.

    Attributes:
      X_train: (n_x, m_train) standardised features, one column per example.
      Y_train: (n_y, m_train) targets: one-hot columns, a 0/1 row, or standardised values.
      X_test: (n_x, m_test) features, standardised with the training statistics.
      Y_test: (n_y, m_test) targets, as Y_train.
      task: "multiclass", "binary" or "regression" (given or inferred).
      output_activation: the output activation to build the Network with.
      loss: the loss that pairs with it.
      feature_names: one name per feature (row of X).
      class_names: one name per class (empty for regression).
      x_mean: (n_x, 1) training means (``X = (raw - x_mean) / x_std``).
      x_std: (n_x, 1) training standard deviations (1 for a constant feature).
      y_mean: (n_y, 1) for regression (predict ``AL * y_std + y_mean``), None otherwise.
      y_std: (n_y, 1) for regression, None otherwise.
      name: the data set's name.
      label_column: the labels' column in the file (load_csv's header name or `col<j>`,
        load_npz's labels key); None for the built-ins and IDX.

    ``kind`` is "classification" (task binary / multiclass) or "regression".
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
    label_column: str | None = None

    n_x = property(lambda self: self.X_train.shape[0], doc="number of features")
    n_y = property(lambda self: self.Y_train.shape[0], doc="number of output units")
    m_train = property(lambda self: self.X_train.shape[1], doc="training examples")
    m_test = property(lambda self: self.X_test.shape[1], doc="test examples")
    kind = property(lambda self: "regression" if self.task == "regression" else "classification",
                    doc='"classification" (binary / multiclass) or "regression"')


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


def _resolve_task(labels: np.ndarray, task: str | None) -> str:
    """task (a name in TASKS, "classification", "auto" or None) -> a name in TASKS."""
    if not (task in TASKS or task in _TASK_ALIASES):
        raise ValueError(f"task must be one of {(*TASKS, *_TASK_ALIASES)}, got {task!r}.")
    if task in TASKS:
        return task
    if task != "classification" and not _integral(labels):
        return "regression"
    if labels.dtype.kind == "f" and not _integral(labels):
        raise ValueError("task='classification' needs integer or string class labels, got "
                         "non-integer floats (or NaN); for continuous targets use "
                         "task='regression'.")
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
      task: "multiclass", "binary", "regression", "classification" (binary if 2
        classes, else multiclass) or "auto" / None (non-integer floats -> regression,
        2 classes -> binary, otherwise multiclass).
      test_fraction: share of examples held out, in (0, 1); the split is stratified
        for classification and deterministic for a given ``seed``.
      seed: the seed of the split's NumPy generator.
      dtype: the floating dtype of the returned arrays (float32 or float64).
      feature_names: one name per feature column (default x0, x1, ...).
      class_names: names for the sorted unique labels (default: str of each label).
      name: the data set's name (``Dataset.name``).

    Returns:
      Dataset with X_*: (n_x, m_*), Y_*: (n_y, m_*) where n_y = #classes
      (multiclass, one-hot columns), 1 (binary: 1 = the second sorted class) or
      the number of targets (regression, standardised with training stats).

    Raises:
      ValueError: the table is not (m, n_x), not numeric, holds NaN/inf, the labels
        do not fit the task, or a split would be empty.

    >>> ds = from_arrays(np.arange(20.0).reshape(10, 2), np.arange(10) % 2, test_fraction=0.4)
    >>> ds.X_train.shape, ds.Y_train.shape, ds.task, ds.kind
    ((2, 6), (1, 6), 'binary', 'classification')
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
    """Names accepted by :func:`load`.

    >>> available()
    ('digits', 'iris', 'wine', 'breast_cancer', 'diabetes')
    """
    return tuple(_BUILTIN)


def load(name: str, *, test_fraction: float = 0.2, seed: int = 0, dtype=np.float32) -> Dataset:
    """Load a data set that ships inside scikit-learn (no download).

    "digits" (n_x=64, 10 classes), "iris" (4, 3), "wine" (13, 3) are multiclass;
    "breast_cancer" (30 features) is binary with Y: (1, m), 1 = benign as in
    sklearn's target; "diabetes" (10 raw features) is regression, Y: (1, m).
    scikit-learn is imported here, not by ``import jaxnn``.

    Args:
      name: one of :func:`available`.
      test_fraction: share of examples held out, in (0, 1) (stratified for classification).
      seed: the seed of the split.
      dtype: the floating dtype of the returned arrays.

    Returns:
      The Dataset.

    >>> load("iris").X_train.shape
    (4, 120)
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


def _existing_file(path) -> Path:
    """path as a Path; a ValueError naming it if it does not exist or is a folder."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist (relative paths start in {Path.cwd()}).")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a file; pass the data file inside it.")
    return path


def _read_rows(path: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    """(1-based line number, stripped fields) of each non-empty row of a text CSV."""
    if not (isinstance(delimiter, str) and len(delimiter) == 1):
        raise ValueError(f"delimiter must be one character (e.g. ',' or ';'), got {delimiter!r}.")
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for r in reader:
                if r:
                    rows.append((reader.line_num, [c.strip() for c in r]))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a UTF-8 text file ({err.reason} at byte {err.start}); "
                         "is it binary (.npz, .xlsx, .gz)?") from None
    except csv.Error as err:
        raise ValueError(f"{path} line {reader.line_num + 1}: not a CSV row ({err}).") from None
    return rows


def _one_column(path: Path, line: int, text: str, delimiter: str) -> ValueError:
    """The error for a row with no delimiter in it, naming the delimiter it seems to use."""
    counts = {d: text.count(d) for d in (",", ";", "\t", "|", " ") if d != delimiter}
    best = max(counts, key=counts.get)
    hint = f" It contains {best!r}: pass delimiter={best!r}." if counts[best] else ""
    return ValueError(f"{path} line {line} is a single column with delimiter={delimiter!r} "
                      f"({text[:40]!r}); a CSV needs feature columns and a label column.{hint}")


def _label_index(label_column, columns: list[str], header: bool, path: Path) -> int:
    if isinstance(label_column, str):
        if not header:
            raise ValueError("label_column given by name needs header=True; pass its index.")
        if label_column not in columns:
            raise ValueError(f"label column {label_column!r} not in {path.name}; "
                             f"columns are {columns}.")
        return columns.index(label_column)
    n = len(columns)
    if isinstance(label_column, bool) or not isinstance(label_column, (int, np.integer)):
        raise ValueError(f"label_column must be a column name or an integer index, got "
                         f"{label_column!r}.")
    if not -n <= int(label_column) < n:
        raise ValueError(f"label column index {label_column} out of range for {n} "
                         f"columns ({columns}); valid: {-n}..{n - 1}.")
    return int(label_column) % n


def load_csv(path, *, label_column: str | int, task: str | None = "auto", delimiter: str = ",",
             header: bool = True, test_fraction: float = 0.2, seed: int = 0,
             dtype=np.float32, name: str | None = None) -> Dataset:
    r"""Load a row-major CSV (one row per example) into a Dataset.

    Every column but the label column must hold finite numbers. Labels that all
    parse as numbers are numeric (see ``task`` in :func:`from_arrays`),
    otherwise they are class names. The returned Dataset's ``label_column`` is
    the label column's name, ``task`` the task used (given or inferred) and
    ``kind`` "classification" or "regression". Errors name the file, the 1-based
    line in it and the column.

    Args:
      path: the CSV file (UTF-8 text).
      label_column: the label column's header name, or its index (negative counts from the end).
      task: "classification", "regression", "binary", "multiclass", or "auto" / None to infer.
      delimiter: the one-character field separator.
      header: whether line 1 names the columns (else they are col0, col1, ...).
      test_fraction: share of examples held out, in (0, 1) (stratified for classification).
      seed: the seed of the split.
      dtype: the floating dtype of the returned arrays.
      name: the data set's name (default: the file name without its suffix).

    Returns:
      The Dataset, X_*: (n_x, m_*), Y_*: (n_y, m_*).

    Raises:
      ValueError: the file is missing or a folder, a row is ragged, a cell is empty,
        not a number or NaN/inf, a label is empty, or the delimiter looks wrong.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "t.csv"
    ...     _ = path.write_text("a,b,kind\n1,2,cat\n3,4,dog\n5,6,cat\n7,8,dog\n9,1,cat\n")
    ...     ds = load_csv(path, label_column="kind", test_fraction=0.4)
    >>> ds.label_column, ds.task, ds.kind, ds.class_names, ds.X_train.shape
    ('kind', 'binary', 'classification', ('cat', 'dog'), (2, 3))
    """
    path = _existing_file(path)
    rows = _read_rows(path, delimiter)
    if not rows:
        raise ValueError(f"{path} is empty: no rows.")
    first_line, first = rows[0]
    n_cols = len(first)
    if n_cols < 2:
        raise _one_column(path, first_line, first[0], delimiter)
    columns = first if header else [f"col{j}" for j in range(n_cols)]
    data = rows[1:] if header else rows
    if not data:
        raise ValueError(f"{path} has a header line but no data rows.")
    j_label = _label_index(label_column, columns, header, path)
    for line, r in data:
        if len(r) != n_cols:
            what = (f"nothing for column {columns[len(r)]!r}" if len(r) < n_cols
                    else f"{len(r) - n_cols} field(s) after the last column {columns[-1]!r}")
            raise ValueError(f"{path} line {line} has {len(r)} fields, expected {n_cols} as on "
                             f"line {first_line}: {what}. Is a delimiter missing or extra?")
    cells = np.array([r for _, r in data], dtype=str)
    lines = [line for line, _ in data]

    def where(i, j):
        label = " (the label column)" if j == j_label else ""
        return f"{path} line {lines[i]}, column {columns[j]!r}{label}"

    empty = np.argwhere(cells == "")
    if empty.size:
        i, j = empty[0]
        raise ValueError(f"{where(i, j)}: " + ("empty label; every row needs one." if j == j_label
                                               else "empty cell; fill it in or drop the row."))
    keep = [j for j in range(n_cols) if j != j_label]
    try:
        features = cells[:, keep].astype(np.float64)
    except ValueError:
        i, j = next((i, j) for i, r in enumerate(cells) for j in keep if not _is_number(r[j]))
        raise ValueError(f"{where(i, j)}: {str(cells[i, j])!r} is not a number; feature columns "
                         "must be numeric.") from None
    bad = np.argwhere(~np.isfinite(features))
    if bad.size:
        i, j = bad[0][0], keep[bad[0][1]]
        raise ValueError(f"{where(i, j)}: {str(cells[i, j])!r} is not a finite number ({len(bad)} "
                         "NaN/inf cells in all); drop or impute them first.")
    raw_labels = cells[:, j_label]
    numbers = np.array([_is_number(s) for s in raw_labels])
    if task == "regression" and not numbers.all():
        i = int(np.argmin(numbers))
        raise ValueError(f"{where(i, j_label)}: {str(raw_labels[i])!r} is not a number, and "
                         "task='regression' needs numeric targets.")
    labels = raw_labels.astype(np.float64) if numbers.all() else raw_labels
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        i = int(np.argmin(np.isfinite(labels)))
        raise ValueError(f"{where(i, j_label)}: {str(raw_labels[i])!r} is not a finite label.")
    ds = from_arrays(features, labels, task=task, test_fraction=test_fraction, seed=seed,
                     dtype=dtype, feature_names=[columns[j] for j in keep],
                     name=path.stem if name is None else name)
    return ds._replace(label_column=columns[j_label])


def _not_npz(path: Path) -> str | None:
    """Why the file is not an .npz archive (None when it starts like one)."""
    with path.open("rb") as f:
        head = f.read(256)
    if not head:
        return "is empty (0 bytes)"
    if head.startswith(b"PK"):
        return None
    if head.startswith(b"\x93NUMPY"):
        return ("is a .npy file (one array), not an .npz archive of named arrays; save both with "
                "np.savez(path, X=features, y=labels), or np.load it and call from_arrays")
    if head.startswith(b"\x1f\x8b"):
        return "is gzip-compressed, not an .npz archive"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        text = head[:err.start].decode("utf-8") if err.start > len(head) - 4 else None
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        return (f"is a text file ({head[:30]!r}...), not an .npz archive; for a CSV use "
                "jaxnn.datasets.load_csv")
    return f"is not an .npz (zip) archive: it starts with {head[:8]!r}"


def load_npz(path, *, features_key: str = "X", labels_key: str = "y", task: str | None = "auto",
             test_fraction: float = 0.2, seed: int = 0, dtype=np.float32,
             name: str | None = None) -> Dataset:
    """Load ``features: (m, n_x)`` and ``labels: (m,)`` from a ``.npz`` (no pickle).

    An optional ``feature_names`` array in the file names the columns; the
    returned Dataset's ``label_column`` is ``labels_key``.

    Args:
      path: the ``.npz`` file (``np.savez``).
      features_key: the name of the (m, n_x) features array in the file.
      labels_key: the name of the (m,) labels array (or (m, n_y) regression targets).
      task: "classification", "regression", "binary", "multiclass", or "auto" / None to infer.
      test_fraction: share of examples held out, in (0, 1) (stratified for classification).
      seed: the seed of the split.
      dtype: the floating dtype of the returned arrays.
      name: the data set's name (default: the file name without its suffix).

    Returns:
      The Dataset, X_*: (n_x, m_*), Y_*: (n_y, m_*).

    Raises:
      ValueError: the file is missing, a folder, not an .npz (a .npy, a text file),
        corrupt, lacks the keys, holds object arrays, or its data are invalid.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "t.npz"
    ...     np.savez(path, X=np.arange(20.0).reshape(10, 2), y=np.arange(10) % 2)
    ...     ds = load_npz(path, test_fraction=0.4)
    >>> ds.label_column, ds.task, ds.X_train.shape
    ('y', 'binary', (2, 6))
    """
    path = _existing_file(path)
    why = _not_npz(path)
    if why:
        raise ValueError(f"{path} {why}.")
    try:
        # our own handle: np.load(path) leaks its file when the zip is broken
        with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
            keys = list(npz.files)
            arrays = {k: npz[k] for k in (features_key, labels_key, "feature_names") if k in keys}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"{path} holds object arrays, which are not loaded (no "
                             "pickle); save numeric / fixed-width string arrays.") from None
        raise ValueError(f"{path} is corrupt or truncated ({err}).") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, zlib.error) as err:
        raise ValueError(f"{path} is corrupt or truncated ({type(err).__name__}: {err}).") from None
    for key in (features_key, labels_key):
        if key not in arrays:
            raise ValueError(f"{path.name} has no array {key!r}; arrays: {keys}. "
                             "Pass features_key=/labels_key= to pick them.")
    ds = from_arrays(arrays[features_key], arrays[labels_key], task=task,
                     test_fraction=test_fraction, seed=seed, dtype=dtype,
                     feature_names=arrays.get("feature_names"),
                     name=path.stem if name is None else name)
    return ds._replace(label_column=labels_key)


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

    Args:
      path: the IDX file, plain or gzip-compressed.

    Returns:
      The array, e.g. (m, 28, 28) uint8 images or (m,) uint8 labels.

    Raises:
      ValueError: the file is missing, a folder, truncated (raw or gzip), or not IDX.

    >>> import gzip, pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "labels-idx1-ubyte.gz"
    ...     _ = path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])))
    ...     print(read_idx(path))
    [7 2 1]
    """
    path = _existing_file(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{path}: the gzip data are truncated or corrupt ({err}); "
                             "download the file again.") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty)'}; "
                         "expected 00 00 <dtype 08/09/0b/0c/0d/0e> <ndim>. Is it really an IDX "
                         "file (plain or .gz), not an HTML page or a truncated download?")
    ndim, dt = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    dims = [int(d) for d in np.frombuffer(raw, ">u4", ndim, 4)] if len(raw) >= 4 + 4 * ndim \
        else None
    expected = None if dims is None else 4 + 4 * ndim + math.prod(dims) * dt.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: header says dims {dims} ({expected} bytes) but the file has "
                         f"{len(raw)} bytes; it is truncated or corrupt.")
    data = np.frombuffer(raw, dtype=dt, offset=4 + 4 * ndim).reshape(dims)
    return data.astype(dt.newbyteorder("="))


def _find_idx(folder: Path, base: str) -> Path:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"{base} (or {base}.gz) not found in {folder}. load_idx never "
                     f"downloads: put the four files {', '.join(_IDX_FILES)} "
                     "(optionally .gz) in that folder.")


def load_idx(folder, *, kind: str = "mnist", dtype=np.float32,
             name: str | None = None) -> Dataset:
    """Load MNIST / Fashion-MNIST IDX files from a local folder (official split).

    Pixels are scaled to [0, 1] and then standardised with training stats.
    Returns X_*: (784, m_*) and one-hot Y_*: (10, m_*) (60000 / 10000 for the
    full sets).

    Args:
      folder: the folder holding the four IDX files (each plain or .gz).
      kind: "mnist" or "fashion_mnist" (the class names).
      dtype: the floating dtype of the returned arrays.
      name: the data set's name (default: ``kind``).

    Returns:
      The Dataset, X_*: (n_x, m_*), Y_*: (10, m_*).

    Raises:
      ValueError: the folder or a file is missing, a file is truncated or not IDX,
        images and labels do not match, labels are not 0..9, or pixels hold NaN/inf.

    >>> load_idx("no/such/folder")
    Traceback (most recent call last):
    ...
    ValueError: no/such/folder does not exist...
    """
    if kind not in _IDX_CLASSES:
        raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(_IDX_CLASSES)}.")
    dtype = _check_dtype(dtype)
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} " + ("is a file, not a folder" if folder.exists()
                                         else "does not exist") + "; pass the folder holding "
                         f"the IDX files ({', '.join(_IDX_FILES)}).")
    files = [_find_idx(folder, b) for b in _IDX_FILES]
    img_tr, lab_tr, img_te, lab_te = (read_idx(f) for f in files)
    parts = []
    for split, images, labels, f in (("train", img_tr, lab_tr, files[0]),
                                      ("t10k", img_te, lab_te, files[2])):
        if images.ndim < 2 or labels.ndim != 1 or not 0 < images.shape[0] == labels.shape[0]:
            raise ValueError(f"{split}: images {images.shape} and labels {labels.shape} do "
                             "not match: need (m, rows, cols) images and (m,) labels.")
        if not _integral(labels) or labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"{split} labels must be integers 0..9, found "
                             f"{labels.min()}..{labels.max()}.")
        pixels = images.reshape(images.shape[0], -1)
        first_bad_column(str(f), pixels.T)  # float IDX files can hold NaN/inf
        parts.append(pixels.astype(dtype) / dtype.type(255))
        parts.append(labels.astype(np.int64))
    if parts[0].shape[1] != parts[2].shape[1]:
        raise ValueError(f"train images have {parts[0].shape[1]} pixels, test images "
                         f"{parts[2].shape[1]}; they must be the same size.")
    return _assemble(parts[0], parts[2], parts[1], parts[3], task="multiclass",
                     classes=np.arange(10), feature_names=[f"pixel{j}" for j in range(
                         parts[0].shape[1])], class_names=_IDX_CLASSES[kind], dtype=dtype,
                     name=kind if name is None else name)
