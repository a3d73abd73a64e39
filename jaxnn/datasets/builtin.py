"""The data sets that ship inside scikit-learn, loaded without a download.

scikit-learn is imported by :func:`load`, not by ``import jaxnn``.
"""

from __future__ import annotations

import numpy as np

from jaxnn.datasets.core import Dataset, from_arrays

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
