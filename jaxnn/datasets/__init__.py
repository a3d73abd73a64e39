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

The modules: ``core`` (the Dataset type, :func:`from_arrays`, the split and the
standardising), ``builtin`` (:func:`load`, :func:`available`), ``files``
(:func:`load_csv`, :func:`load_npz`), ``idx`` (:func:`read_idx`, :func:`load_idx`) and
``validation`` (:func:`split_validation`: a validation split out of the training split).
"""

from jaxnn.datasets.builtin import available, load
from jaxnn.datasets.core import TASKS, Dataset, from_arrays
from jaxnn.datasets.files import load_csv, load_npz
from jaxnn.datasets.idx import load_idx, read_idx
from jaxnn.datasets.validation import split_validation

__all__ = [
    "load",
    "available",
    "Dataset",
    "from_arrays",
    "load_csv",
    "load_npz",
    "read_idx",
    "load_idx",
    "TASKS",
    "split_validation",
]
