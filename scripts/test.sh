#!/usr/bin/env bash
# The README's test command: checks the tools every test needs (scripts/check-tools.sh, which
# installs what is missing when run as root on Debian/Ubuntu and otherwise says what to install),
# then runs every test of the workspace. Extra arguments go to cargo test, e.g.
#
#   ./scripts/test.sh                       every test (from anywhere in the checkout)
#   ./scripts/test.sh --test header         one test file
#
# --no-fail-fast: one failing test binary must not hide the results of the others.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo >/dev/null || { echo "test: cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
scripts/check-tools.sh
exec cargo test --workspace --no-fail-fast "$@"
