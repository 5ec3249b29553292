"""Writing files so that a kill never leaves a partial file under the final name: the one helper lr0fm uses.

The content goes to a temporary file next to the target (named after the host, the process and a random
suffix, so two processes writing the same target never share it), which is renamed into place only when
complete; on an error the temporary file is removed. A process killed with ``SIGKILL`` cannot remove its
temporary file: :func:`remove_stale_temporaries` removes those of dead processes of this host when a run
starts again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from lr0fm.faults import kill_point

#: errors of a full disk, a quota or a file-size limit
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_HOST = re.sub(r"[^A-Za-z0-9]+", "", socket.gethostname())[:32] or "host"
_TEMPORARY = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")


class DiskFullError(OSError):
    """A write stopped by a full disk, a quota or a file-size limit (``errno``, ``strerror`` and ``filename`` kept)."""

    def __str__(self) -> str:
        return (
            f"cannot write {self.filename}: {self.strerror}; its previous version (if any) is intact, "
            "free some space (or raise the file-size limit) and rerun to continue"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left under ``folder`` when its process was killed.

    Only files of this host whose process is gone are removed (on a shared file system, other hosts' jobs
    may be writing theirs). Returns the removed paths.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.rglob(".*.tmp"):
        match = _TEMPORARY.match(path.name)
        if match and match["host"] == _HOST and not _alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` when the block ends without an error.

    Example::

        with atomic_path("out/results.csv") as tmp:
            tmp.write_text(text)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        kill_point("atomic-rename")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
