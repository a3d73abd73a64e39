"""How much memory is free where arrays would go, read once per ``fit`` call.

``available_bytes``: the device's own memory where the runtime reports it (GPU,
TPU), else the host's (``host_available_bytes``: ``MemAvailable``, and the
cgroup limit of a container). Inside ``one_reading()`` the free memory is read
once per device, and each check that passes ``reserve``s its bytes for the
checks after it. ``raise_if_too_big`` is the one comparison every memory check
of ``jaxnn.train.memory`` makes, and its one-line ``ValueError``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os

import jax


def size_text(n: float) -> str:
    """Bytes as a short text in powers of 1000: '40.0 GB'.

    >>> size_text(4e10), size_text(1536), size_text(12)
    ('40.0 GB', '1.5 kB', '12 B')
    """
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def host_available_bytes() -> tuple[int, str] | None:
    """(bytes free for a new allocation on this host, where that number comes from), or None.

    ``MemAvailable`` of ``/proc/meminfo`` (else free pages from ``os.sysconf``),
    lowered to a container's cgroup limit minus its use where one is set.

    >>> free, source = host_available_bytes()
    >>> free > 0, source.split()[0] in ("MemAvailable", "free", "the")
    (True, True)
    """
    found = None
    try:
        with open("/proc/meminfo") as f:
            text = "\n" + f.read()
        at = text.find("\nMemAvailable:")
        if at >= 0:
            found = (int(text[at + 14:].split(None, 1)[0]) * 1024, "MemAvailable of /proc/meminfo")
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = (os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free pages")
        except (OSError, ValueError, AttributeError):
            return None
    for folder, limit, usage, cache in (
            ("/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"),
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
             "total_inactive_file")):
        cap = _read_int(f"{folder}/{limit}")
        if cap is None or cap >= 2**60:  # no limit ("max", or the v1 maximum)
            continue
        used = _read_int(f"{folder}/{usage}")
        if used is None:
            continue
        # the usage counts the page cache; its inactive part is given back on demand
        free = cap - used + _stat(f"{folder}/memory.stat", cache)
        if free < found[0]:
            found = (max(free, 0), f"the container's memory limit ({folder}/{limit})")
    return found


def _stat(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def available_bytes(device=None) -> tuple[int, str] | None:
    """(bytes free where ``device`` allocates, where that number comes from), or None if unknown.

    A device that reports its memory (``device.memory_stats()``: GPU, TPU)
    gives ``bytes_limit - bytes_in_use``; a CPU device allocates on the host
    (``host_available_bytes``).

    Args:
      device: a ``jax.Device`` (default: the first local device).

    >>> free, source = available_bytes()
    >>> free > 0
    True
    """
    device = device or jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # a backend without memory statistics
        stats = None
    if stats and "bytes_limit" in stats:
        free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return free, f"{device.platform}:{device.id}'s memory"
    return host_available_bytes()


# Inside one_reading(): device -> [available_bytes(device), bytes reserved by checks that passed]
_READING: contextvars.ContextVar = contextvars.ContextVar("jaxnn_memory_reading", default=None)


@contextlib.contextmanager
def one_reading():
    """Within the block the checks read the free memory once per device, and reserve what they pass.

    ``fit`` checks the state (params copy, optimizer state), then a step (gradients,
    activations), before allocating either: the second check compares with what was free
    less the first one's bytes, as if it had read the memory after that allocation.

    >>> with one_reading():
    ...     raise_if_too_big("a copy needs", 1000, "W 1.0 kB", "W")
    """
    token = _READING.set({})
    try:
        yield
    finally:
        _READING.reset(token)


def free_bytes(device=None) -> tuple[int, str] | None:
    """``available_bytes(device)``, read once per ``one_reading()`` block, less what it reserved.

    Args:
      device: a ``jax.Device`` (default: the first local device).

    >>> with one_reading():
    ...     reserve(1000)
    ...     "less 1.0 kB allocated before" in free_bytes()[1]
    True
    """
    entry = _entry(device)
    if entry is None:
        return available_bytes(device)
    free, reserved = entry
    if free is None or not reserved:
        return free
    return max(free[0] - reserved, 0), f"{free[1]}, less {size_text(reserved)} allocated before"


def reserve(needed: int, device=None) -> None:
    """Inside ``one_reading()``: count ``needed`` bytes as allocated on ``device`` (else nothing).

    Args:
      needed: bytes a check passed.
      device: where they go (default: the first local device).
    """
    entry = _entry(device)
    if entry is not None:
        entry[1] += needed


def _entry(device) -> list | None:
    """Inside ``one_reading()``: [what was free on ``device`` when first asked, bytes reserved]."""
    reading = _READING.get()
    if reading is None:
        return None
    device = device or jax.local_devices()[0]
    if device not in reading:
        reading[device] = [available_bytes(device), 0]
    return reading[device]


def raise_if_too_big(what: str, needed: int, parts, largest, device=None) -> None:
    """Raise the one-line ``ValueError`` when ``needed`` bytes exceed what is free (see module).

    Args:
      what: the subject and verb of the message ("the network 4-100-3 needs").
      needed: the bytes about to be allocated.
      parts: what they are made of, for the message (a str, or a function that
        returns it, called only to raise).
      largest: the largest piece and its bytes, for the message (likewise).
      device: where they go (default: the first local device).

    >>> raise_if_too_big("W needs", 10**16, "params 10000.0 TB", "its largest layer, W1 (10**8, 10**8)")
    Traceback (most recent call last):
    ...
    ValueError: W needs about 10000.0 TB (params 10000.0 TB) but only ... is free ...
    """
    free = free_bytes(device)
    if free is None or needed <= free[0]:
        reserve(needed, device)
        return
    parts, largest = (t() if callable(t) else t for t in (parts, largest))
    raise ValueError(
        f"{what} about {size_text(needed)} ({parts}) but only {size_text(free[0])} is free "
        f"({free[1]}); {largest}, is too big: use fewer or smaller hidden layers, a smaller "
        "batch, or a machine with more memory."
    )
