# Shared by scripts/*: create the project's virtualenv once and keep it current.
# Sourced, not run. Needs only a Python >= 3.11 on PATH (python3, or $PYTHON).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${WALLET_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

ensure_venv() {
    local extras="$1" stamp
    if [ ! -x "$VENV/bin/python" ]; then
        echo "creating virtualenv in $VENV" >&2
        "$PY" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    fi
    # Reinstall only when pyproject.toml changed or other extras are asked for.
    stamp="$VENV/.wallet-installed-$extras-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        echo "installing wallet[$extras] into $VENV" >&2
        local target="$ROOT"
        [ -n "$extras" ] && target="$ROOT[$extras]"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$target" >&2
        rm -f "$VENV"/.wallet-installed-"$extras"-*
        touch "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}

# A program from Debian's package, installed when missing (as root, with apt-get),
# else a warning saying what fails without it: ensure_debian PROGRAM PACKAGE WHAT.
ensure_debian() {
    local program="$1" package="$2" what="$3"
    if command -v "$program" >/dev/null || [ -x "/usr/sbin/$program" ] || [ -x "/usr/bin/$program" ]; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian's $package for $what" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >&2
    else
        echo "warning: $program is missing and cannot be installed here;" \
             "install Debian's $package package, or $what will fail or be skipped" >&2
    fi
}

# Page tests drive Debian's chromium (never a downloaded browser build).
ensure_chromium() { ensure_debian chromium chromium "the page tests"; }

# The multi-node tests and scripts/bench_cluster.py run Debian's HAProxy in front
# of the app servers, with the shipped deploy/haproxy/haproxy.cfg.
ensure_haproxy() { ensure_debian haproxy haproxy "the multi-node tests"; }

# `wallet backup`/`wallet restore` on PostgreSQL run pg_dump and pg_restore.
ensure_pg_client() { ensure_debian pg_dump postgresql-client "the PostgreSQL backup tests"; }

# promtool (Prometheus's own parser) checks the shipped alert rules and dashboard
# queries. Only the tool is unpacked into the virtualenv: installing the package
# would also start a Prometheus server.
ensure_promtool() {
    local dir="$VENV/prometheus"
    if ! command -v promtool >/dev/null && [ ! -x "$dir/usr/bin/promtool" ] \
        && command -v apt-get >/dev/null; then
        echo "unpacking promtool from Debian's prometheus package" >&2
        local tmp
        tmp="$(mktemp -d)" && chmod 755 "$tmp"  # apt downloads as its own user
        (cd "$tmp" && apt-get download -qq prometheus >&2 && dpkg -x prometheus_*.deb "$dir") \
            || echo "warning: promtool is unavailable; its check of the alert rules is skipped" >&2
        rm -rf "$tmp"
    fi
    if [ -x "$dir/usr/bin/promtool" ]; then
        export PATH="$PATH:$dir/usr/bin"
    fi
}

# The scanner's browser files (the ZXing WebAssembly decoder) come from npm,
# pinned by package-lock.json; installed again only when the lockfile changes.
ensure_node_modules() {
    local stamp
    if ! command -v npm >/dev/null; then
        echo "warning: npm is missing; the scanner's decoder and the JavaScript tests need Node.js" >&2
        return
    fi
    stamp="$ROOT/node_modules/.wallet-installed-$(sha256sum "$ROOT/package-lock.json" | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        echo "installing the scanner's npm packages (npm ci)" >&2
        (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error >&2)
        touch "$stamp"
    fi
}
