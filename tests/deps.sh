#!/usr/bin/env bash
# Installs what building and testing lrsgate needs on Debian, only where it is missing.
# Sourced by tests/quickstart.sh and tests/run.sh.
set -euo pipefail

lrsgate_install_deps() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)          # pingora-core builds zlib-ng with cmake
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  command -v perl >/dev/null 2>&1 || missing+=(perl)            # vendored OpenSSL build
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if ((${#missing[@]})); then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install Rust 1.88 or newer with rustup (https://rustup.rs), then run this again." >&2
    exit 1
  fi
}
