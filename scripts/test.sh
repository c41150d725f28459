#!/usr/bin/env bash
# The whole check: install, lint, type-check, then the test suite on real ffmpeg,
# SQLite and a throwaway PostgreSQL cluster (with the short chaos run, tests/chaos).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test
ruff check src tests chaos
ruff format --check src tests chaos
mypy
lint-imports  # the package layering: pyproject.toml [tool.importlinter]
mypy tests
mypy chaos
python3 -m pytest -q -p no:cacheprovider "$@"
