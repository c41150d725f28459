#!/usr/bin/env bash
# Install what reelwatch needs on a Debian machine, skipping what is already there:
# ffmpeg; with --test, PostgreSQL's server binaries (for the test suite's throwaway
# cluster) and Prometheus (for promtool); and the Python package with its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || packages+=(ffmpeg)
if [[ "${1:-}" == "--test" ]]; then
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || packages+=(postgresql)
    command -v promtool >/dev/null || packages+=(prometheus)  # promtool checks /metrics
fi
if ((${#packages[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >/dev/null
fi

extras=""
[[ "${1:-}" == "--test" ]] && extras="[dev]"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -e ".${extras}"
