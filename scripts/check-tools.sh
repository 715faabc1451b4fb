#!/usr/bin/env bash
# The one list of what the tests, the demo and CI need besides cargo, and its check: a command
# that is missing is installed with apt-get when this runs as root on Debian/Ubuntu; otherwise
# one message names the missing packages and the command that installs them, and the exit
# status is 1. Silent and 0 when everything is there. Run by scripts/test.sh and .ci/run.
#
# A new tool is one line in TOOLS: the command whose presence is checked, the Debian package
# that provides it, and what needs it. (slurm-wlm is not here: tests/slurm.rs installs it
# through scripts/slurm-local.sh, as root, and skips the test when it cannot.)
set -euo pipefail

# command     Debian package  needed by
TOOLS='
cc            gcc             the C examples and every test that compiles C (tests/c_examples.rs, header.rs, install.rs)
c++           g++             the C++ wrapper and examples (tests/c_examples.rs, header.rs)
make          make            examples-c/Makefile (tests/c_examples.rs, install.rs)
python3       python3         the Python bindings (tests/python_bindings.rs, python_ctypes.rs)
go            golang-go       the Go binding tests (tests/go_bindings.rs)
nm            binutils        the exported-symbol checks (tests/binary_hygiene.rs)
readelf       binutils        the binary checks (tests/binary_hygiene.rs)
git           git             the artifact tests of untracked files (tests/ffi_artifacts.rs)
pkg-config    pkg-config      the installed .pc file (tests/install.rs)
cmake         cmake           the installed CMake package (tests/install.rs)
clang         clang           the header compiled by a second compiler (tests/header.rs)
clang++       clang           the C++ wrapper compiled by a second compiler (tests/header.rs)
openssl       openssl         the TLS test certificates (tests/reliability_secrets.rs)
valgrind      valgrind        the C programs under memcheck (.ci/run, RELIABILITY.md)
'

missing_commands=()
missing_packages=()
need() { # COMMAND PACKAGE
  missing_commands+=("$1")
  missing_packages+=("$2")
}

check_all() {
  missing_commands=()
  missing_packages=()
  local command package _
  while read -r command package _; do
    [ -n "$command" ] || continue
    command -v "$command" >/dev/null || need "$command" "$package"
  done <<<"$TOOLS"
  # Not a command: gcc's sanitizer runtimes (libasan, libubsan, libtsan) for .ci/run's ASan/UBSan
  # and TSan runs. They come with gcc on Debian (libgcc-N-dev); a program must link with them.
  if command -v cc >/dev/null && ! sanitizers_link; then
    need "libasan/libtsan" "libgcc-$(cc -dumpversion | cut -d. -f1)-dev"
  fi
}

sanitizers_link() {
  local dir ok=0
  dir=$(mktemp -d)
  printf 'int main(void) { return 0; }\n' >"$dir/probe.c"
  cc -fsanitize=address,undefined "$dir/probe.c" -o "$dir/asan" 2>/dev/null &&
    cc -fsanitize=thread "$dir/probe.c" -o "$dir/tsan" 2>/dev/null || ok=$?
  rm -rf "$dir"
  return $ok
}

check_all
[ ${#missing_commands[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing_packages[@]}" | sort -u | tr '\n' ' ')
packages=${packages% }
commands=${missing_commands[*]}

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  if command -v apt-get >/dev/null; then why="not root, so not installing"; else why="no apt-get here"; fi
  {
    echo "check-tools: missing ${commands// /, } ($why)."
    echo "  Install them (Debian/Ubuntu): sudo apt-get install -y $packages"
    echo "  (or run this as root: it installs them; elsewhere, your system's packages of the same tools)"
  } >&2
  exit 1
fi

echo "check-tools: installing $packages (apt-get, for: $commands)" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086  # $packages is a list of package names
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "check-tools: apt-get install -y $packages failed (output above)" >&2
  exit 1
fi
# A package that installed but did not provide its command is a wrong line in TOOLS.
check_all
if [ ${#missing_commands[@]} -ne 0 ]; then
  echo "check-tools: still missing after installing: ${missing_commands[*]} (check TOOLS in $0)" >&2
  exit 1
fi
echo "check-tools: installed $packages" >&2
