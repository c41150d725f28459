"""Child-process plumbing shared by ``up``'s supervisor and the ffmpeg runner."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

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
