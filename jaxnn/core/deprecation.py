"""The one way jaxnn retires a name: a ``DeprecationWarning`` for one release, then removal."""

from __future__ import annotations

import warnings


def deprecated(old: str, new: str) -> None:
    """Warn that ``old`` is deprecated and name what replaces it (called by the old name).

    Args:
      old: the deprecated name, as a user writes it.
      new: what to use instead.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     deprecated("host_slice", "fit(..., local_data=True)")
    >>> print(caught[0].message)
    jaxnn: host_slice is deprecated and will be removed in the next release; use fit(..., local_data=True).
    """
    warnings.warn(f"jaxnn: {old} is deprecated and will be removed in the next release; use {new}.",
                  DeprecationWarning, stacklevel=3)


__all__ = ["deprecated"]
