"""Row-major tables on disk, one row per example: CSV text and ``.npz`` archives.

Both are verified, not trusted: a missing file, a folder where a file is
expected, a missing or empty cell, a ragged row, a wrong delimiter, NaN/inf, a
file of another kind or a truncated one raises ``ValueError`` naming the file
(for a CSV also the 1-based line and the column) and what to do. The table is
then split, standardised and transposed by ``from_arrays``.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from jaxnn.core.validate import MissingFileError
from jaxnn.datasets.core import Dataset, from_arrays


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def existing_file(path) -> Path:
    """path as a Path, checked to name an existing file, not a folder.

    Args:
      path: the file's path (str or Path).

    Returns:
      The Path.

    Raises:
      MissingFileError: nothing is at ``path`` (a ``ValueError`` and a ``FileNotFoundError``).
      ValueError: it is a folder.

    >>> existing_file("no/such.csv")
    Traceback (most recent call last):
    ...
    jaxnn.core.validate.MissingFileError: no/such.csv does not exist...
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path} does not exist (relative paths start in {Path.cwd()}).")
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
            text = f.read()
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for r in reader:
            if r:
                rows.append((reader.line_num, [c.strip() for c in r]))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a UTF-8 text file ({err.reason} at byte {err.start}); "
                         "is it binary (.npz, .xlsx, .gz)?") from None
    except csv.Error as err:
        raise ValueError(f"{path} line {reader.line_num + 1}: not a CSV row ({err}).") from None
    if "\x00" in text:  # one scan of the text; the rows are searched only to name the cell
        line, j, cell = next(((line, j + 1, c) for line, r in rows for j, c in enumerate(r)
                              if "\x00" in c), (text.count("\n", 0, text.index("\x00")) + 1, "?", ""))
        raise ValueError(f"{path} line {line}, column {j}: the cell {cell!r} holds a NUL "
                         "byte (\\x00), which would be dropped silently; the file is corrupt or not "
                         "UTF-8 text (UTF-16?): re-export it as UTF-8 CSV.")
    return rows


def _unique_names(path: Path, line: int, columns: list[str]) -> None:
    """Refuse a header naming two columns alike: label_column would silently pick the first."""
    seen: dict[str, int] = {}
    for j, c in enumerate(columns):
        if c in seen:
            raise ValueError(f"{path} line {line}, column {j + 1}: the header name {c!r} is also "
                             f"column {seen[c] + 1}'s; column names must be unique (label_column "
                             "and feature_names select by name): rename one.")
        seen[c] = j


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


def load_csv(path, *, label_column: str | int = -1, task: str | None = "auto", delimiter: str = ",",
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
      label_column: the label column's header name, or its index (negative counts from the
        end); default -1, the last column (as ``jaxnn train --csv`` takes it).
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
      MissingFileError: the file is missing (also a ``FileNotFoundError``).
      ValueError: the file is a folder, a row is ragged, a cell is empty,
        not a number or NaN/inf, a label is empty, or the delimiter looks wrong.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "t.csv"
    ...     _ = path.write_text("a,b,kind\n1,2,cat\n3,4,dog\n5,6,cat\n7,8,dog\n9,1,cat\n")
    ...     ds = load_csv(path, label_column="kind", test_fraction=0.4)
    >>> ds.label_column, ds.task, ds.kind, ds.class_names, ds.X_train.shape
    ('kind', 'binary', 'classification', ('cat', 'dog'), (2, 3))
    """
    path = existing_file(path)
    rows = _read_rows(path, delimiter)
    if not rows:
        raise ValueError(f"{path} is empty: no rows.")
    first_line, first = rows[0]
    n_cols = len(first)
    if n_cols < 2:
        raise _one_column(path, first_line, first[0], delimiter)
    columns = first if header else [f"col{j}" for j in range(n_cols)]
    if header:
        _unique_names(path, first_line, columns)
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
      MissingFileError: the file is missing (also a ``FileNotFoundError``).
      ValueError: the file is a folder, not an .npz (a .npy, a text file),
        corrupt, lacks the keys, holds object arrays, or its data are invalid.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "t.npz"
    ...     np.savez(path, X=np.arange(20.0).reshape(10, 2), y=np.arange(10) % 2)
    ...     ds = load_npz(path, test_fraction=0.4)
    >>> ds.label_column, ds.task, ds.X_train.shape
    ('y', 'binary', (2, 6))
    """
    path = existing_file(path)
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

