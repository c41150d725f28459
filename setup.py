"""The one build step pyproject.toml cannot declare: the git commit, written into the
wheel as ``reelwatch/_build.py`` so that ``reelwatch --version`` names the commit of an
installed release, not only of a checkout (docs/operations.md, "Releases").

The commit is ``REELWATCH_BUILD_COMMIT`` when set (a build from an archive, without
``.git``), else ``git describe --always --dirty --abbrev=12`` of the tree being built,
else "unknown". An editable install writes nothing: its ``--version`` asks git.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent


def build_commit() -> str:
    commit = os.environ.get("REELWATCH_BUILD_COMMIT", "").strip()
    if not commit:
        try:
            commit = subprocess.run(
                ["git", "describe", "--always", "--dirty", "--abbrev=12", "--exclude=*"],
                cwd=SOURCE,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
    # It names a folder (/opt/reelwatch/releases/VERSION-COMMIT) and goes into Python.
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}", commit):
        commit = "unknown"
    return commit


class BuildWithCommit(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib, "reelwatch", "_build.py")
        header = '"""Written by setup.py when the wheel was built."""'
        target.write_text(f'{header}\n\nCOMMIT = "{build_commit()}"\n')


setup(cmdclass={"build_py": BuildWithCommit})
