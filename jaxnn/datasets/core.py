"""The Dataset type and the engine every loader shares: split, standardise, transpose.

:func:`from_arrays` turns a row-major ``(m, n_x)`` table and its labels into a
:class:`Dataset` with ``X: (n_x, m)`` and ``Y: (n_y, m)`` (formulas §1): it
checks the table, resolves the task, makes a deterministic (stratified for
classification) split and calls :func:`assemble`, which standardises with the
training statistics, encodes the targets and transposes, once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxnn.core.validate_data import check_real

TASKS = ("multiclass", "binary", "regression")
"""The tasks a Dataset can have (``Dataset.task``), each with its output activation and loss."""
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


def check_dtype(dtype) -> np.dtype:
    """The floating dtype a loader returns its arrays in, checked.

    Args:
      dtype: float32 or float64 (a NumPy dtype or its name).

    Returns:
      The ``np.dtype``.

    Raises:
      ValueError: ``dtype`` is not a floating dtype.

    >>> check_dtype("float64")
    dtype('float64')
    """
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
    check_real("features", features)  # complex, dates, objects: no silent cast
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


def _as_labels(labels) -> np.ndarray:
    """labels -> an array of numbers, bools or strings; complex, dates and other objects refused."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "US":
        return labels
    if labels.dtype == object and labels.size and all(isinstance(v, str) for v in labels.ravel()):
        return labels.astype(str)  # e.g. a pandas column of class names
    check_real("labels", labels)
    return labels


def is_integral(labels: np.ndarray) -> bool:
    """Whether labels can be class ids: not floats, or finite floats with no fractional part.

    Args:
      labels: the labels, any shape.

    Returns:
      True for integer or string labels and for whole-number floats.

    >>> is_integral(np.array([0.0, 1.0])), is_integral(np.array([0.5, 1.0]))
    (True, False)
    """
    return labels.dtype.kind != "f" or bool(np.all(np.isfinite(labels) & (labels % 1 == 0)))


def _resolve_task(labels: np.ndarray, task: str | None) -> str:
    """task (a name in TASKS, "classification", "auto" or None) -> a name in TASKS."""
    if not (task in TASKS or task in _TASK_ALIASES):
        raise ValueError(f"task must be one of {(*TASKS, *_TASK_ALIASES)}, got {task!r}.")
    if task in TASKS:
        return task
    if task != "classification" and not is_integral(labels):
        return "regression"
    if labels.dtype.kind == "f" and not is_integral(labels):
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
    if not is_integral(labels):
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


def split_indices(codes: np.ndarray | None, m: int, fraction: float, seed: int):
    """The deterministic split every loader uses: (kept indices, held-out indices).

    Args:
      codes: (m,) class codes 0..k-1 for a stratified split, or None (regression).
      m: the number of examples.
      fraction: the share held out, in (0, 1).
      seed: the seed of the NumPy generator.

    Returns:
      Two permuted index arrays, of m - round(m * fraction) and round(m * fraction) entries.

    >>> [len(i) for i in split_indices(np.array([0, 1] * 5), 10, 0.2, 0)]
    [8, 2]
    """
    return _split(codes, m, fraction, seed)


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


def assemble(F_train, F_test, y_train, y_test, *, task, classes, feature_names,
             class_names, dtype, name) -> Dataset:
    """Row-major pieces of a train/test split -> Dataset in the (n_x, m) layout.

    Features (and regression targets) are standardised with the training
    statistics and transposed; class codes become one-hot columns (multiclass)
    or a 0/1 row (binary). :func:`from_arrays` calls it after its own split,
    ``load_idx`` with the official split of the files.

    Args:
      F_train: (m_train, n_x) float training features, one row per example.
      F_test: (m_test, n_x) float test features.
      y_train: (m_train,) class codes 0..k-1, or (m_train, n_y) float regression targets.
      y_test: (m_test,) class codes, or (m_test, n_y) float regression targets.
      task: "multiclass", "binary" or "regression".
      classes: (k,) the sorted classes the codes index (None for regression).
      feature_names: one name per feature column.
      class_names: one name per class, or None for the str of each class.
      dtype: the floating dtype of the returned arrays.
      name: the data set's name.

    Returns:
      The Dataset, X_*: (n_x, m_*), Y_*: (n_y, m_*).

    Raises:
      ValueError: ``class_names`` does not have one name per class.

    >>> F = np.arange(8.0).reshape(4, 2)
    >>> ds = assemble(F[:3], F[3:], np.array([0, 1, 0]), np.array([1]), task="binary",
    ...               classes=np.array([0, 1]), feature_names=("a", "b"), class_names=None,
    ...               dtype=np.float32, name="toy")
    >>> ds.X_train.shape, ds.Y_test.tolist(), ds.class_names
    ((2, 3), [[1.0]], ('0', '1'))
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
    dtype = check_dtype(dtype)
    features, feature_names = _as_features(features, feature_names)
    labels = _as_labels(labels)
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
    return assemble(features[train], features[test], y[train], y[test], task=task,
                    classes=classes, feature_names=feature_names, class_names=class_names,
                    dtype=dtype, name=name)

