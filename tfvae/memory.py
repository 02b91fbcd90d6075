"""How much memory this process may still use, to refuse work that cannot fit before it starts.

A model of a billion parameters, or a file that declares gigabytes, fails
deep inside TensorFlow or the kernel's out-of-memory killer; tfvae compares
its size with `available_memory()` first and refuses it in one line with
both numbers.
"""

import os

MEMINFO = "/proc/meminfo"
CGROUP_LIMIT = "/sys/fs/cgroup/memory.max"
CGROUP_USAGE = "/sys/fs/cgroup/memory.current"


def available_memory():
    """Bytes of memory available to this process, or `None` when the system does not say.

    The smaller of the kernel's `MemAvailable` (falling back to free
    physical pages) and what the process's cgroup allows beyond its usage.
    """
    found = [_meminfo_available(), _cgroup_available()]
    found = [value for value in found if value is not None]
    return min(found) if found else None


def format_bytes(size):
    """`size` in the largest binary unit that keeps it at least 1: `"1.5 GiB"`, `"512 bytes"`."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} bytes"


def _meminfo_available():
    try:
        with open(MEMINFO) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _cgroup_available():
    try:
        with open(CGROUP_LIMIT) as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(CGROUP_USAGE) as f:
            usage = int(f.read().strip())
        return max(int(limit) - usage, 0)
    except (OSError, ValueError):
        return None
