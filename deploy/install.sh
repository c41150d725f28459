#!/usr/bin/env bash
# Install (or upgrade) reelwatch on a Debian machine as systemd services; idempotent: a
# second run with the same package changes nothing. docs/operations.md, "Deployment".
#
#   sudo deploy/install.sh --roles server,worker,monitor [--workers 2] [--wheel FILE]
#
# --roles R,R     the roles to enable: server, worker, monitor, watchdog (default: none,
#                 only install); roles not named are left as they are
# --workers N     reelwatch-worker@1..N to enable with the worker role (default 2)
# --wheel FILE    install this wheel as a release (deploy/release.sh); default: a wheel
#                 built from this checkout. The first release becomes current; a later
#                 one is only prepared: `deploy/release.sh switch NAME` runs it
# --root DIR      install under DIR instead of / (an image, a test): no user, no
#                 ownership, no systemctl
# --no-apt        do not install Debian packages (ffmpeg, python3-venv)
# --system-deps   a venv on the system's Python packages, reelwatch alone installed into
#                 it (otherwise its dependencies come from requirements/runtime.txt,
#                 hash-checked)
set -euo pipefail

checkout=$(cd "$(dirname "$0")/.." && pwd)
roles="" workers=2 wheel="" root="" apt=1 system_deps=0
while (($#)); do
    case $1 in
        --roles) roles=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --wheel) wheel=$(realpath "$2"); shift 2 ;;
        --root) root=$(realpath "$2"); shift 2 ;;
        --no-apt) apt=0; shift ;;
        --system-deps) system_deps=1; shift ;;
        *) echo "unknown option: $1 (see the top of $0)" >&2; exit 2 ;;
    esac
done
[[ $workers =~ ^[1-9][0-9]?$ ]] || { echo "--workers: 1 to 99" >&2; exit 2; }
IFS=, read -ra wanted <<<"$roles"
for role in "${wanted[@]}"; do
    [[ $role =~ ^(server|worker|monitor|watchdog)$ ]] || { echo "unknown role: $role" >&2; exit 2; }
done
[[ -n $root || $(id -u) -eq 0 ]] || { echo "run it as root (or with --root DIR)" >&2; exit 1; }

opt=$root/opt/reelwatch home=$root/var/lib/reelwatch etc=$root/etc/reelwatch
say() { echo "install: $*"; }

# Copies FILE to DEST with MODE unless DEST already holds the same bytes.
put() {
    local mode=$1 file=$2 dest=$3
    if ! cmp -s "$file" "$dest"; then
        install -D -m "$mode" "$file" "$dest"
        say "wrote $dest"
    fi
}

install_packages() {
    ((apt)) || return 0
    local missing=()
    command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
    python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
    ((${#missing[@]})) || return 0
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

create_user_and_folders() {
    if [[ -z $root ]] && ! getent passwd reelwatch >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/reelwatch --no-create-home \
            --shell /usr/sbin/nologin reelwatch
        say "created the user reelwatch"
    fi
    local owner=(-o reelwatch -g reelwatch) config=(-o root -g reelwatch)
    [[ -z $root ]] || owner=() config=()
    # The home holds the database (SQLite) and the media store: the user's alone.
    [[ -d $home ]] || install -d -m 0700 "${owner[@]}" "$home"
    [[ -d $etc ]] || install -d -m 0750 "${config[@]}" "$etc"
    [[ -d $opt ]] || install -d -m 0755 "$opt"
    if [[ ! -e $etc/reelwatch.env ]]; then  # the operator's settings: never overwritten
        install -m 0640 "${config[@]}" "$checkout/deploy/reelwatch.env" "$etc/reelwatch.env"
        say "wrote $etc/reelwatch.env: edit it, then run this again"
    fi
}

# The wheel to install: --wheel, or one built from the checkout. SOURCE_DATE_EPOCH makes
# the build reproducible, so an unchanged checkout gives the same wheel (nothing to do).
build_wheel() {
    if [[ -n $wheel ]]; then
        echo "$wheel"
        return
    fi
    local out
    out=$(mktemp -d)
    SOURCE_DATE_EPOCH=315532800 python3 -m pip wheel --quiet --no-deps \
        --disable-pip-version-check --wheel-dir "$out" "$checkout" >&2
    echo "$out"/reelwatch-*.whl
}

# The wheel becomes a release beside any other (deploy/release.sh); the first one is
# made current at once, a later one waits for `deploy/release.sh switch` (the upgrade).
install_package() {
    local file name flags=()
    [[ -z $root ]] || flags+=(--root "$root")
    ((!system_deps)) || flags+=(--system-deps)
    file=$(build_wheel)
    name=$("$checkout/deploy/release.sh" prepare "$file" "${flags[@]}")
    [[ -n $wheel ]] || rm -rf "$(dirname "$file")"
    if [[ ! -e $opt/current ]]; then
        "$checkout/deploy/release.sh" switch "$name" --no-migrate --no-restart "${flags[@]}"
        say "installed release $name: $opt/current"
    elif [[ $(readlink "$opt/current") != "releases/$name" ]]; then
        say "prepared release $name; to run it: deploy/release.sh switch $name"
    fi
}

install_units() {
    local unit
    for unit in "$checkout"/deploy/systemd/reelwatch*; do
        put 0644 "$unit" "$root/etc/systemd/system/$(basename "$unit")"
    done
    put 0755 "$checkout/deploy/reelwatch-as-service" "$root/usr/local/sbin/reelwatch"
}

# A command as the services run it: the reelwatch user, the environment file.
as_service() {
    if [[ -z $root ]]; then
        /usr/local/sbin/reelwatch "$@"
    else
        (set -a && . "$etc/reelwatch.env" && REELWATCH_HOME=$home && cd "$home" &&
            "$opt/current/bin/reelwatch" "$@")
    fi
}

enable_roles() {
    local units=() role i
    for role in "${wanted[@]}"; do
        if [[ $role == worker ]]; then
            for ((i = 1; i <= workers; i++)); do units+=("reelwatch-worker@$i.service"); done
        else
            units+=("reelwatch-$role.service")
        fi
    done
    ((${#units[@]})) || return 0
    if [[ -n $root || ! -d /run/systemd/system ]]; then
        say "systemd is not running here: not enabling ${units[*]} (the files are installed)"
        return 0
    fi
    systemctl daemon-reload
    systemctl enable --now --quiet reelwatch.target
    systemctl enable --now --quiet "${units[@]}"
    say "enabled and started ${units[*]}"
}

install_packages
create_user_and_folders
install_package
install_units
if [[ " ${wanted[*]} " == *" server "* ]]; then
    as_service db upgrade >/dev/null
    say "database schema up to date"
fi
enable_roles
