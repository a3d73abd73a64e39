"""Training history as strict JSON: ``save_history`` and ``load_history``.

``save_history`` replaces the file atomically (a temporary file beside it,
fsynced, then renamed), so a run killed while writing leaves the previous
history whole; ``jaxnn train`` rewrites it before each checkpoint, so
``history.json`` always covers every epoch of the newest checkpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from jaxnn.core.validate import MissingFileError
from jaxnn.train.folder import atomic_write, stale_temps


def save_history(history: dict, path, *, settings: dict | None = None) -> None:
    """Write history as strict JSON (lists; NaN/inf become null), atomically.

    The old file stays whole until the new one is complete; temporary files of
    earlier writers that died are removed. OS errors (a full or read-only
    disk) propagate as ``OSError``.

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
    text = json.dumps(out | {k: clean(v) for k, v in history.items()}, indent=1)
    path = Path(path)
    atomic_write(path, text.encode())
    for p in stale_temps(path.parent, re.escape(path.name)):
        p.unlink(missing_ok=True)


def load_history(path) -> dict[str, np.ndarray]:
    """Read ``save_history``'s JSON back into arrays (null -> NaN).

    Args:
      path: the file ``save_history`` wrote.

    Returns:
      name -> array, (epochs,) or (E, epochs) as it was saved (a "settings" entry is left out).

    Raises:
      MissingFileError: there is no file at ``path`` (also a ``FileNotFoundError``).
      ValueError: it cannot be read or does not hold a history.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_history({"epoch": np.arange(1, 3), "cost": np.array([0.5, np.nan])}, f"{d}/h.json")
    ...     load_history(f"{d}/h.json")
    {'epoch': array([1, 2]), 'cost': array([0.5, nan])}
    """
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise MissingFileError(f"load_history: {path} does not exist.") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"load_history: cannot read {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"load_history: {path} does not hold a history (a JSON object of lists).")
    return {k: np.array(v, dtype=float if k not in ("epoch", "diverged") else None)
            for k, v in raw.items() if k != "settings"}
