"""Child-process plumbing shared by ``up``'s supervisor, the ffmpeg runner and the
backups' PostgreSQL tools."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """In a freshly forked child (``preexec_fn``): have Linux send ``sig`` when the
    parent dies, so no child outlives a SIGKILLed parent. The signal follows the parent
    *thread* that forked, so that thread must outlive the child."""
    if _LIBC is None:
        return
    _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def postgres_tool(name: str) -> str:
    """The path of a PostgreSQL program (``pg_dump``, ``pg_ctl``…): on the PATH, or in
    Debian's versioned folders, the newest first."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise FileNotFoundError(f"{name} is not installed (apt-get install postgresql)")
