#!/usr/bin/env bash
# Releases of reelwatch side by side, switched and rolled back in one command.
# docs/operations.md, "Releases, upgrade and rollback". As root, from a checkout:
#
#   deploy/release.sh install WHEEL      prepare + switch: the usual upgrade of one machine
#   deploy/release.sh prepare WHEEL      a new release beside the current one; prints its name
#   deploy/release.sh migrate NAME       NAME's `reelwatch db upgrade` (the running release
#                                        keeps working: migrations only expand)
#   deploy/release.sh switch NAME        migrate, point `current` at NAME, restart the roles
#   deploy/release.sh rollback           back to the previous release (no migration)
#   deploy/release.sh list               the releases; which is current, which previous
#
# Each release is a venv, /opt/reelwatch/releases/VERSION-COMMIT (the wheel's version and
# the commit setup.py wrote into it); the units run /opt/reelwatch/current/bin/reelwatch.
#
# --root DIR          work under DIR instead of / (a test, an image): no user, no systemctl
# --system-deps       prepare: a venv on the system's Python packages (otherwise the
#                     dependencies come from requirements/runtime.txt, hash-checked)
# --no-restart        switch, install, rollback: leave the roles running (roll them yourself)
# --restart-with FILE switch, install, rollback: run FILE NAME instead of
#                     `systemctl restart reelwatch.target` (e.g. one server at a time)
# --no-migrate        switch: do not migrate (install.sh migrates on its own)
set -euo pipefail

checkout=$(cd "$(dirname "$0")/.." && pwd)
usage() {
    echo "usage: $0 install|prepare WHEEL | migrate|switch NAME | rollback | list [options]" >&2
    exit 2
}
action=${1:-} target=""
shift || true
case $action in
    install | prepare | migrate | switch)
        target=${1:-}
        shift || true
        [[ -n $target && $target != -* ]] || usage
        ;;
    rollback | list) ;;
    *) usage ;;
esac
root="" system_deps=0 restart=1 restart_with="" migrate=1
while (($#)); do
    case $1 in
        --root) root=$(realpath "$2"); shift 2 ;;
        --system-deps) system_deps=1; shift ;;
        --no-restart) restart=0; shift ;;
        --restart-with) restart_with=$(realpath "$2"); shift 2 ;;
        --no-migrate) migrate=0; shift ;;
        *) echo "unknown option: $1 (see the top of $0)" >&2; exit 2 ;;
    esac
done
[[ -n $root || $(id -u) -eq 0 || $action == list ]] ||
    { echo "run it as root (or with --root DIR)" >&2; exit 1; }

opt=$root/opt/reelwatch home=$root/var/lib/reelwatch etc=$root/etc/reelwatch
releases=$opt/releases
say() { echo "release: $*" >&2; }
fail() { echo "release: $*" >&2; exit 1; }

# The release a link (current, previous) points at, or nothing.
linked() { [[ -L $opt/$1 ]] && basename "$(readlink "$opt/$1")" || true; }

# Points the link NAME at releases/RELEASE atomically: a new link renamed over the old.
link() {
    ln -sfn "releases/$2" "$opt/.$1.new"
    mv -T "$opt/.$1.new" "$opt/$1"
}

# VERSION COMMIT of a wheel: its metadata, and the reelwatch/_build.py setup.py wrote.
wheel_identity() {
    python3 - "$1" <<'EOF'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    names = wheel.namelist()
    metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    build = wheel.read("reelwatch/_build.py").decode() if "reelwatch/_build.py" in names else ""
version = re.search(r"^Version: (\S+)$", metadata, re.M)
commit = re.search(r'^COMMIT = "([^"]+)"$', build, re.M)
print(version.group(1) if version else "unknown", commit.group(1) if commit else "unknown")
EOF
}

prepare() {
    local wheel version commit digest name dir
    wheel=$(realpath "$1")
    [[ -f $wheel ]] || fail "no wheel $1"
    read -r version commit < <(wheel_identity "$wheel")
    digest=$(sha256sum "$wheel" | cut -d' ' -f1)
    name=$version-$commit
    # A commit names the code only when the tree was clean: else the wheel's digest too.
    [[ $commit != unknown && $commit != *-dirty ]] || name=$name-${digest:0:8}
    [[ $name =~ ^[0-9A-Za-z][0-9A-Za-z.+_-]*$ ]] || fail "not a release name: $name"
    dir=$releases/$name
    if [[ -f $dir/release.txt ]]; then
        echo "$name"  # installed already: nothing to do
        return
    fi
    rm -rf "$dir"  # an earlier attempt cut short: release.txt is written last
    install -d -m 0755 "$releases"
    local flags=()
    # On the system's packages the venv sees the system's pip too: no copy of its own.
    ((system_deps)) && flags=(--system-site-packages --without-pip)
    python3 -m venv "${flags[@]}" "$dir"
    local pip=("$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input)
    [[ $(id -u) -ne 0 ]] || pip+=(--root-user-action=ignore)
    ((system_deps)) || "${pip[@]}" --require-hashes -r "$checkout/requirements/runtime.txt" >&2
    "${pip[@]}" --no-deps --no-compile "$wheel" >&2
    local schema
    schema=$("$dir/bin/python" -c 'from alembic.script import ScriptDirectory
from reelwatch.db.migrate import alembic_config
print(ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head())')
    printf '%s\n' "version=$version" "commit=$commit" "wheel=$(basename "$wheel")" \
        "sha256=$digest" "schema=$schema" "installed=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        >"$dir/release.txt.new"
    mv "$dir/release.txt.new" "$dir/release.txt"
    say "prepared $name in $dir (schema $schema)"
    echo "$name"
}

# RELEASE's reelwatch as the services run it: the reelwatch user, the environment file.
as_service() {
    local release=$1
    shift
    if [[ -z $root ]]; then
        (cd /var/lib/reelwatch && set -a && . /etc/reelwatch/reelwatch.env && set +a &&
            umask 077 && runuser -u reelwatch -- "$releases/$release/bin/reelwatch" "$@")
    else
        (set -a && . "$etc/reelwatch.env" && REELWATCH_HOME=$home && cd "$home" &&
            "$releases/$release/bin/reelwatch" "$@")
    fi
}

require() {
    [[ $1 =~ ^[0-9A-Za-z][0-9A-Za-z.+_-]*$ && -f $releases/$1/release.txt ]] ||
        fail "no release $1 (deploy/release.sh list)"
}

migrate() {
    require "$1"
    as_service "$1" db upgrade >&2
}

restart_roles() {
    if [[ -n $restart_with ]]; then
        "$restart_with" "$1"
        say "ran $restart_with $1"
    elif ((!restart)); then
        say "the roles still run the code they started with: restart them to run $1"
    elif [[ -n $root || ! -d /run/systemd/system ]]; then
        say "systemd is not running here: restart the roles to run $1"
    else
        systemctl restart reelwatch.target
        say "restarted reelwatch.target"
    fi
}

# Makes RELEASE current and the current one previous; restarts the roles.
switch_to() {
    local release=$1 was
    require "$release"
    was=$(linked current)
    if [[ $was == "$release" ]]; then
        say "$release is current already"
        return
    fi
    link current "$release"
    [[ -z $was ]] || link previous "$was"
    say "current: $release${was:+ (previous: $was)}"
    restart_roles "$release"
}

list() {
    local current previous dir name mark
    current=$(linked current) previous=$(linked previous)
    printf '%-9s %-40s %-7s %s\n' "" release schema installed
    for dir in "$releases"/*/; do
        name=$(basename "$dir")
        [[ -f $dir/release.txt ]] || continue
        mark=""
        [[ $name != "$previous" ]] || mark=previous
        [[ $name != "$current" ]] || mark=current
        printf '%-9s %-40s %-7s %s\n' "$mark" "$name" \
            "$(sed -n 's/^schema=//p' "$dir/release.txt")" \
            "$(sed -n 's/^installed=//p' "$dir/release.txt")"
    done
}

case $action in
    prepare) prepare "$target" ;;
    migrate) migrate "$target" ;;
    switch)
        ((!migrate)) || migrate "$target"
        switch_to "$target"
        ;;
    install)
        name=$(prepare "$target")
        migrate "$name"
        switch_to "$name"
        ;;
    rollback)
        previous=$(linked previous)
        [[ -n $previous ]] || fail "no previous release to go back to"
        switch_to "$previous"  # no migration: the schema stays, expand-only
        ;;
    list) if [[ -d $releases ]]; then list; else say "no releases in $releases"; fi ;;
esac
