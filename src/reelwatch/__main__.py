"""``python -m reelwatch``: the same commands as the ``reelwatch`` script."""

from reelwatch.cli.main import app

app(prog_name="reelwatch")
