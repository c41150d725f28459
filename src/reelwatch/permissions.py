"""Everything reelwatch writes is readable by its own user only.

The database, the mail sink's messages, the web session key, backups and media (with
ffmpeg's outputs, which inherit the mask) are created 0600 in 0700 folders: the command
line sets the process's umask once, before any command runs, and every child process
(workers, ffmpeg) inherits it. The service therefore runs as one user on every machine
that shares a media store.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def restrict_new_files() -> None:
    """New files 0600 and folders 0700, for this process and its children."""
    os.umask(PRIVATE_UMASK)


def open_to_others(home: Path) -> str | None:
    """Why ``home`` lets other users in, or None when it is private (or not made yet).

    Only the folder itself is checked: closed to others it guards whatever older
    versions left readable inside it. reelwatch warns and changes nothing, as the folder
    may be a mount point or shared on purpose (a backup agent's group)."""
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
    except FileNotFoundError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"REELWATCH_HOME {home.resolve()} is open to other users (mode {mode:04o}): "
        f"run `chmod -R go-rwx {home.resolve()}`"
    )
