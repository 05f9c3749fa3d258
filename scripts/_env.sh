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

# Page tests drive Debian's chromium (never a downloaded browser build).
ensure_chromium() {
    if [ -x /usr/bin/chromium ]; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian's chromium for the page tests" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
    else
        echo "warning: /usr/bin/chromium is missing and cannot be installed here;" \
             "install Debian's chromium package, or the page tests will fail" >&2
    fi
}


# The multi-node tests and scripts/bench_cluster.py run Debian's HAProxy in front
# of the app servers, with the shipped deploy/haproxy/haproxy.cfg.
ensure_haproxy() {
    if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian's haproxy for the multi-node tests" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >&2
    else
        echo "warning: haproxy is missing and cannot be installed here;" \
             "install Debian's haproxy package, or the multi-node tests are skipped" >&2
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
