#!/usr/bin/env bash
# Checks (and, as root with apt-get, installs) what the tests and the demo need besides cargo:
# a C and a C++ compiler, make, python3, binutils (nm, readelf) for the binary checks, and for
# the install tests (tests/install.rs) and the header tests (tests/header.rs): pkg-config, cmake,
# and clang (the header and the C++ wrapper are compiled with gcc and clang), and for the
# reliability runs (RELIABILITY.md): valgrind, openssl (the TLS test's certificates) and gcc's
# sanitizer runtimes (libasan, libubsan, libtsan).
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(gcc)
command -v c++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v python3 >/dev/null || missing+=(python3)
command -v nm >/dev/null || missing+=(binutils)
command -v readelf >/dev/null || missing+=(binutils)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v cmake >/dev/null || missing+=(cmake)
command -v clang >/dev/null || missing+=(clang)
command -v clang++ >/dev/null || missing+=(clang)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v openssl >/dev/null || missing+=(openssl)

# The sanitizer runtimes come with gcc on Debian; check that a program links with them.
sanitizers_link() {
  local dir
  dir=$(mktemp -d)
  printf 'int main(void) { return 0; }\n' >"$dir/probe.c"
  cc -fsanitize=address,undefined "$dir/probe.c" -o "$dir/asan" 2>/dev/null &&
    cc -fsanitize=thread "$dir/probe.c" -o "$dir/tsan" 2>/dev/null
  local ok=$?
  rm -rf "$dir"
  return $ok
}
if command -v cc >/dev/null && ! sanitizers_link; then
  gcc_major=$(cc -dumpversion | cut -d. -f1)
  missing+=("libgcc-${gcc_major}-dev")
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
# shellcheck disable=SC2207
missing=($(printf '%s\n' "${missing[@]}" | sort -u))
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing tools: ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
