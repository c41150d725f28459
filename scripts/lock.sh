#!/usr/bin/env bash
# Re-pin the Python dependencies (requirements/*.txt) from pyproject.toml's bounds, with
# hashes, for the Python and platform CI runs on. Run after changing a dependency, then
# run the tests and commit the locks with the change. Needs uv (`pip install uv`).
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --quiet)
uv pip compile pyproject.toml "${common[@]}" "$@" -o requirements/runtime.txt
uv pip compile pyproject.toml --extra dev "${common[@]}" "$@" -o requirements/dev.txt
