#!/usr/bin/env bash
# Make this machine able to run dms-db: Debian packages (PostgreSQL 15,
# pgSphere, and stilts, whose taplint validates the TAP service in the tests)
# and a virtual environment in .venv with dms-db and its test tools.
# Idempotent and quiet when everything is already there.  Sourced by
# scripts/start and scripts/test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
DEB_PACKAGES=(postgresql-15 postgresql-15-pgsphere stilts)

missing_debs=()
for pkg in "${DEB_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing_debs+=("$pkg")
  fi
done
if ((${#missing_debs[@]})); then
  echo "installing Debian packages: ${missing_debs[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
  else
    SUDO=
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
  # Debian's package starts its own cluster on 5432; dms-db runs its own servers.
  if command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q "^15 *main .*online"; then
    $SUDO pg_ctlcluster 15 main stop || true
  fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating virtual environment in .venv"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.dms-db-installed"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "installing Python packages into .venv"
  log="$VENV/pip-install.log"
  if ! { "$VENV/bin/python" -m pip install -q --upgrade pip &&
    "$VENV/bin/python" -m pip install -q -e "$ROOT[service,test]"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "installing Python packages failed (log above)" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
