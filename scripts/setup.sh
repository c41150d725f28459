#!/usr/bin/env bash
# Install what reelwatch needs on a Debian machine, skipping what is already there:
# ffmpeg, Graphviz (workflow graphs) and npm (the pages' browser libraries); with --test,
# PostgreSQL's server binaries (for the test suite's throwaway cluster), Prometheus (for
# promtool), Chromium (the web tests' browser) and systemd (systemd-analyze verifies
# deploy/systemd); the Python package with its locked dependencies; and the browser
# libraries, from package-lock.json into web/static/vendor.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || packages+=(ffmpeg)
command -v dot >/dev/null || packages+=(graphviz)
command -v npm >/dev/null || packages+=(npm)
if [[ "${1:-}" == "--test" ]]; then
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || packages+=(postgresql)
    command -v promtool >/dev/null || packages+=(prometheus)  # promtool checks /metrics
    [[ -x /usr/bin/chromium ]] || packages+=(chromium)         # Playwright drives it
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || packages+=(nginx)  # the cluster test
    command -v systemd-analyze >/dev/null || packages+=(systemd)  # verifies deploy/systemd
fi
if ((${#packages[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >/dev/null
fi

# The pages' browser libraries, pinned by package-lock.json, copied into the package
# (before pip, so a built wheel has them too); served by reelwatch, never from a CDN.
web=src/reelwatch/web
# --ignore-scripts: only files are wanted (swagger-ui-dist's @scarf/scarf would report
# the install over the network).
(cd "$web" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
mkdir -p "$web/static/vendor"
cp "$web/node_modules/uplot/dist/uPlot.iife.min.js" "$web/node_modules/uplot/dist/uPlot.min.css" \
    "$web/node_modules/uplot/LICENSE" "$web/static/vendor/"
hls="$web/node_modules/hls.js"  # the video page's player
cp "$hls/dist/hls.light.min.js" "$web/static/vendor/"
cp "$hls/LICENSE" "$web/static/vendor/hls.js.LICENSE"
swagger="$web/node_modules/swagger-ui-dist"  # /docs
cp "$swagger/swagger-ui-bundle.js" "$swagger/swagger-ui.css" "$web/static/vendor/"
cp "$swagger/LICENSE" "$web/static/vendor/swagger-ui.LICENSE"
cp "$swagger/NOTICE" "$web/static/vendor/swagger-ui.NOTICE"

# Python dependencies at the versions the tests passed with, checked against the hashes
# in the lock (requirements/*.txt, made by scripts/lock.sh from pyproject.toml's bounds);
# then reelwatch itself, editable, with nothing more to resolve.
lock=requirements/runtime.txt
[[ "${1:-}" == "--test" ]] && lock=requirements/dev.txt
pip=(python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
"${pip[@]}" --require-hashes -r "$lock"
"${pip[@]}" --no-deps -e .
