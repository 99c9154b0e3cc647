"""Which failures are the machine's, not the video's: a full, over-quota or read-only disk, a data
root that cannot be read or written. In: the exception a step raised and the data root. Out: a
readable reason with the fix, or None (then the failure is the video's and is recorded as such).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

LOW_DISK_BYTES = 64 * 1024 * 1024  # under this much free space, a failed write is taken for a full disk
_DISK_ERRNOS = {
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def infrastructure_fault(exc: BaseException, data_root: Path) -> str | None:
    """What is wrong with the machine when `exc` is its fault, not the video's, else None: a full,
    over-quota or read-only disk (by errno, or any error while the data root's disk has under
    `LOW_DISK_BYTES` free: libsndfile says only "System error."), or the data root not writable."""
    root = Path(data_root).resolve()
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        return f"{_DISK_ERRNOS[exc.errno]} ({exc.filename or root}); free space or fix the disk, then run again"
    try:
        free_bytes = shutil.disk_usage(root).free
    except OSError:
        return f"the data root {root} cannot be read; check that it is mounted, then run again"
    if free_bytes < LOW_DISK_BYTES:
        return (
            f"the disk of the data root {root} is full ({free_bytes / 2**20:.0f} MiB free; "
            f"{type(exc).__name__}: {exc}); free space, then run again"
        )
    if isinstance(exc, PermissionError) and exc.filename and Path(exc.filename).resolve().is_relative_to(root):
        return (
            f"cannot write under the data root ({exc.filename}: permission denied); fix its permissions, then run again"
        )
    return None
