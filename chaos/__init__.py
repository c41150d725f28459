"""The chaos suite: real ``reelwatch up`` processes under injected faults, then proofs.

``python -m chaos --minutes 5 --database sqlite --seed 7`` uploads good and broken
videos while workers and ``up`` are SIGKILLed, SMTP goes away, the database restarts or
is locked, and the media disk fills up; then it checks that every video reached its
correct terminal state, no original was lost, each user got exactly one outcome e-mail
per video, every timeline agrees with its video, and nothing temporary was left behind.
See ``docs/reliability.md``.
"""

import sys
from pathlib import Path

# The media recipes are the test suite's (tests/samples.py): importable under pytest,
# and here for ``python -m chaos`` run from a checkout. Appended, so it shadows nothing.
_TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
