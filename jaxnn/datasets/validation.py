"""A validation split held out from a Dataset's training split (for early stopping).

The test split stays untouched: model selection (the best epoch, the patience
of early stopping) looks only at the validation columns, which come out of
``X_train``. The standardising statistics stay those of the whole training
split (``x_mean``, ``x_std``), so the three splits share one scale and the
test split still never informed them.
"""

from __future__ import annotations

import numpy as np

from jaxnn.datasets.core import Dataset, split_indices


def class_codes(Y: np.ndarray, task: str) -> np.ndarray | None:
    """Class codes (m,) of one-hot columns or a 0/1 row; None for regression targets.

    Args:
      Y: (n_y, m) targets as a Dataset holds them.
      task: the Dataset's task ("multiclass", "binary" or "regression").

    Returns:
      (m,) integer codes, or None for regression.

    >>> class_codes(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]), "multiclass").tolist()
    [1, 0, 1]
    """
    if task == "regression":
        return None
    return (np.argmax(Y, axis=0) if task == "multiclass" else Y[0] > 0.5).astype(np.int64)


def split_validation(ds: Dataset, fraction: float = 0.2, *, seed: int = 0):
    """Hold out ``fraction`` of the training columns as a validation split.

    Deterministic for a given ``seed``, stratified for classification (each
    class keeps at least one training column), like the train/test split of
    :func:`from_arrays`.

    Args:
      ds: the Dataset; its ``X_train: (n_x, m_train)`` is split.
      fraction: the share of the training columns held out, in (0, 1).
      seed: the seed of the split's NumPy generator.

    Returns:
      ``(fit_ds, (X_val, Y_val))``: ``fit_ds`` is ``ds`` with the remaining
      training columns (test split and statistics unchanged); X_val: (n_x, m_val),
      Y_val: (n_y, m_val).

    Raises:
      ValueError: ``fraction`` is not in (0, 1), or leaves a split empty.

    >>> ds = jaxnn.datasets.from_arrays(np.arange(40.0).reshape(20, 2), np.arange(20) % 2)
    >>> fit_ds, (X_val, Y_val) = split_validation(ds, 0.25)
    >>> fit_ds.m_train, X_val.shape, fit_ds.m_test
    (12, (2, 4), 4)
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction!r}; e.g. "
                         "0.2 holds out 20% of the training examples for validation.")
    try:
        keep, val = split_indices(class_codes(ds.Y_train, ds.task), ds.m_train, fraction, seed)
    except ValueError as e:
        raise ValueError(f"validation split of the {ds.m_train} training examples: "
                         f"{e}".replace("test_fraction", "fraction")) from None

    def part(a, idx):
        a = np.ascontiguousarray(a[:, idx])
        a.flags.writeable = False
        return a

    fit_ds = ds._replace(X_train=part(ds.X_train, keep), Y_train=part(ds.Y_train, keep))
    return fit_ds, (part(ds.X_train, val), part(ds.Y_train, val))
