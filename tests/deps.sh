#!/usr/bin/env bash
# Installs what building and testing lrsgate needs on Debian, only where it is missing.
# Sourced by tests/quickstart.sh and tests/run.sh.
set -euo pipefail

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

lrsgate_install_deps() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)          # pingora-core builds zlib-ng with cmake
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  command -v perl >/dev/null 2>&1 || missing+=(perl)            # vendored OpenSSL build
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install Rust 1.89 or newer with rustup (https://rustup.rs), then run this again." >&2
    exit 1
  fi
}

# What the end-to-end and interop tests need, on top of the build's: Debian's Chromium, Node.js
# with npm and the locked npm packages (playwright-core, @xapi/cmi5) in tests/e2e, a real Ralph
# LRS (pinned, tests/interop/ralph-requirements.txt) in the virtualenv target/ralph-venv,
# PostgreSQL's server binaries (the tests start their own cluster), and openssl.
lrsgate_install_test_deps() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  # Postgres mode's tests start their own throwaway cluster with Debian's server binaries.
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)      # test certificates for TLS by SNI
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool checks conf/prometheus-alerts.yml
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  # npm ci only when the lock changed since the last install.
  local lock_stamp=tests/e2e/node_modules/.lrsgate-lock
  if ! cmp -s tests/e2e/package-lock.json "$lock_stamp" 2>/dev/null; then
    echo "installing the e2e npm packages (tests/e2e/package-lock.json)"
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
    cp tests/e2e/package-lock.json "$lock_stamp"
  fi
  local venv=target/ralph-venv
  local req_stamp=$venv/.lrsgate-requirements
  if ! cmp -s tests/interop/ralph-requirements.txt "$req_stamp" 2>/dev/null; then
    echo "installing Ralph LRS into $venv (tests/interop/ralph-requirements.txt)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r tests/interop/ralph-requirements.txt
    cp tests/interop/ralph-requirements.txt "$req_stamp"
  fi
  export LRSGATE_RALPH_VENV="$PWD/$venv"
}
