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

# The clock-ahead run wraps pytest in libfaketime (Debian's faketime).
ensure_faketime() {
    if command -v faketime >/dev/null; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian's faketime for the clock-ahead run" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >&2
    else
        echo "error: faketime is missing; install Debian's faketime package" >&2
        exit 2
    fi
}
