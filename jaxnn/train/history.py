"""Training history as strict JSON: ``save_history`` and ``load_history``."""

from __future__ import annotations

import json

import numpy as np


def save_history(history: dict, path, *, settings: dict | None = None) -> None:
    """Write history as strict JSON (lists; NaN/inf become null).

    Args:
      history: ``fit``'s, name -> (epochs,) array ((E, epochs) for an ensemble).
      path: the file to write.
      settings: optional JSON-serialisable run settings, stored first under "settings".

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_history({"epoch": np.arange(1, 3), "cost": np.array([0.5, np.inf])}, f"{d}/h.json")
    ...     json.loads(pathlib.Path(d, "h.json").read_text())
    {'epoch': [1, 2], 'cost': [0.5, None]}
    """
    def clean(v):
        a = np.asarray(v)
        if a.dtype.kind == "f":
            return np.where(np.isfinite(a), a, None).tolist()
        return a.tolist()

    out = {} if settings is None else {"settings": settings}
    with open(path, "w") as f:
        json.dump(out | {k: clean(v) for k, v in history.items()}, f, indent=1)


def load_history(path) -> dict[str, np.ndarray]:
    """Read ``save_history``'s JSON back into arrays (null -> NaN).

    Args:
      path: the file ``save_history`` wrote.

    Returns:
      name -> array, (epochs,) or (E, epochs) as it was saved (a "settings" entry is left out).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_history({"epoch": np.arange(1, 3), "cost": np.array([0.5, np.nan])}, f"{d}/h.json")
    ...     load_history(f"{d}/h.json")
    {'epoch': array([1, 2]), 'cost': array([0.5, nan])}
    """
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"load_history: cannot read {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"load_history: {path} does not hold a history (a JSON object of lists).")
    return {k: np.array(v, dtype=float if k not in ("epoch", "diverged") else None)
            for k, v in raw.items() if k != "settings"}
