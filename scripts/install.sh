#!/usr/bin/env bash
# Builds gitlab_runner_api and installs it into a prefix, in cargo-c's layout (without needing
# cargo-c):
#
#   $LIBDIR/libgitlab_runner_api.so.<version>    the shared library (SONAME libgitlab_runner_api.so.<ABI>)
#   $LIBDIR/libgitlab_runner_api.so.<ABI>        -> libgitlab_runner_api.so.<version>
#   $LIBDIR/libgitlab_runner_api.so              -> libgitlab_runner_api.so.<ABI>
#   $LIBDIR/libgitlab_runner_api.a               the static library
#   $INCLUDEDIR/gitlab_runner_api.h              the C header (C99 / C++11 and later)
#   $INCLUDEDIR/gitlab_runner_api.hpp            the C++17 wrapper (header-only)
#   $LIBDIR/pkgconfig/gitlab_runner_api.pc       pkg-config (Libs.private: for --static)
#   $LIBDIR/cmake/gitlab_runner_api/gitlab_runner_apiConfig.cmake         find_package(gitlab_runner_api):
#   $LIBDIR/cmake/gitlab_runner_api/gitlab_runner_apiConfigVersion.cmake  gitlab_runner_api::gitlab_runner_api
#                                                                          and ::gitlab_runner_api_static
#   $BINDIR/register-runner                      the command-line registration tool
#
# Usage:
#   scripts/install.sh                                  # cargo build --release, install into /usr/local
#   PREFIX=$HOME/.local scripts/install.sh              # another prefix
#   DESTDIR=/tmp/stage PREFIX=/usr scripts/install.sh   # staged install (packaging): files go to
#                                                       # $DESTDIR$PREFIX, and say $PREFIX inside
#   scripts/install.sh --no-build                       # install what the last build produced
#
# Variables (environment or NAME=value arguments):
#   PREFIX      /usr/local        installation prefix (absolute)
#   DESTDIR     (empty)           staging directory prepended to every installed path
#   LIBDIR      $PREFIX/lib       libraries, pkgconfig/ and cmake/
#   INCLUDEDIR  $PREFIX/include   headers
#   BINDIR      $PREFIX/bin       register-runner
#   PROFILE     release           cargo profile to build and install (debug = plain `cargo build`)
#   CARGO_TARGET_DIR  <repo>/target   cargo's target directory
#   CARGO       cargo             the cargo program
# Options:
#   --no-build  do not run cargo: install the files of $CARGO_TARGET_DIR/$PROFILE as they are
#   -h, --help  this text
#
# Nothing outside $DESTDIR$PREFIX (or the directories named above) is touched. On Linux, run
# `ldconfig` afterwards (as root) when installing into a system directory such as /usr/local/lib.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

no_build=0
for arg in "$@"; do
  case "$arg" in
    --no-build) no_build=1 ;;
    -h | --help) usage; exit 0 ;;
    [A-Z]*=*) export "${arg?}" ;;
    *) echo "install.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

die() {
  echo "install.sh: $*" >&2
  exit 1
}

root="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/usr/local}"
PREFIX="${PREFIX%/}"
DESTDIR="${DESTDIR:-}"
DESTDIR="${DESTDIR%/}"
LIBDIR="${LIBDIR:-$PREFIX/lib}"
LIBDIR="${LIBDIR%/}"
INCLUDEDIR="${INCLUDEDIR:-$PREFIX/include}"
INCLUDEDIR="${INCLUDEDIR%/}"
BINDIR="${BINDIR:-$PREFIX/bin}"
BINDIR="${BINDIR%/}"
PROFILE="${PROFILE:-release}"
CARGO="${CARGO:-cargo}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
for dir in "$PREFIX" "$LIBDIR" "$INCLUDEDIR" "$BINDIR"; do
  case "$dir" in /*) ;; *) die "PREFIX, LIBDIR, INCLUDEDIR and BINDIR must be absolute paths (got '$dir')" ;; esac
done

# The native libraries the static library needs, as
#   cargo rustc --release --lib --crate-type staticlib -- --print native-static-libs
# reports them on Linux (rustc's list for the standard library; our dependencies add none).
NATIVE_STATIC_LIBS="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

# ---- build ------------------------------------------------------------------------------------

if [ "$no_build" -eq 0 ]; then
  case "$PROFILE" in
    release) profile_args=(--release) ;;
    debug | dev) profile_args=() ;;
    *) profile_args=(--profile "$PROFILE") ;;
  esac
  echo "install.sh: building ($CARGO build ${profile_args[*]})" >&2
  (cd "$root" && CARGO_TARGET_DIR="$target_dir" "$CARGO" build "${profile_args[@]}" --lib --bin register-runner)
fi
[ "$PROFILE" = dev ] && PROFILE=debug
build_dir="$target_dir/$PROFILE"

# cargo writes the libraries to $build_dir/deps and copies them up to $build_dir on `cargo
# build` (not on `cargo test`): the copy in deps/ is always the newest one.
lib_file() {
  local f
  for f in "$build_dir/deps/$1" "$build_dir/$1"; do
    if [ -f "$f" ]; then
      echo "$f"
      return
    fi
  done
  die "$1 not found in $build_dir: build first (cargo build${profile_args:+ ${profile_args[*]}}), or drop --no-build"
}
shared_lib="$(lib_file libgitlab_runner_api.so)"
static_lib="$(lib_file libgitlab_runner_api.a)"
register_runner="$build_dir/register-runner"
[ -x "$register_runner" ] || die "$register_runner not found: build first, or drop --no-build"
header="$root/include/gitlab_runner_api.h"
header_hpp="$root/include/gitlab_runner_api.hpp"
[ -f "$header" ] && [ -f "$header_hpp" ] || die "include/gitlab_runner_api.h or .hpp is missing"

# Versions: from the header (generated from Cargo.toml and src/ffi/version.rs, checked by tests).
macro() {
  sed -n "s/^#define $1 \(.*\)$/\1/p" "$header" | tr -d '"' | head -n 1
}
version="$(macro GLR_VERSION_STRING)"
abi="$(macro GLR_ABI_VERSION)"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "no GLR_VERSION_STRING in $header"
[[ "$abi" =~ ^[0-9]+$ ]] || die "no GLR_ABI_VERSION in $header"
description="$(sed -n 's/^description = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
soname="libgitlab_runner_api.so.$abi"
real_name="libgitlab_runner_api.so.$version"

# The library must carry the SONAME the header promises (build.rs sets it): a mismatch means a
# stale build or header.
if command -v readelf >/dev/null; then
  lib_soname="$(readelf -d "$shared_lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')"
  [ "$lib_soname" = "$soname" ] || die "$shared_lib has SONAME '$lib_soname', expected $soname (stale build?)"
fi

# ---- helpers ----------------------------------------------------------------------------------

# A path for the .pc file: relative to ${prefix} (or ${exec_prefix}) when below it, as cargo-c writes.
pc_path() {
  local path="$1" base="$2"
  if [ "$path" = "$PREFIX" ]; then
    echo "\${$base}"
  elif [ "${path#"$PREFIX"/}" != "$path" ]; then
    echo "\${$base}/${path#"$PREFIX"/}"
  else
    echo "$path"
  fi
}

# A path for the CMake files: relative to the package's prefix, computed from the location of the
# config file, when below PREFIX (so the installed tree can be moved); absolute otherwise.
cmake_path() {
  local path="$1"
  if [ "$path" = "$PREFIX" ]; then
    echo "\${_glr_prefix}"
  elif [ "${path#"$PREFIX"/}" != "$path" ]; then
    echo "\${_glr_prefix}/${path#"$PREFIX"/}"
  else
    echo "$path"
  fi
}

installed=()
put() { # put MODE SOURCE DEST
  install -m "$1" "$2" "$DESTDIR$3"
  installed+=("$DESTDIR$3")
}
write() { # write MODE DEST < contents
  local tmp
  tmp="$(mktemp)"
  cat >"$tmp"
  install -m "$1" "$tmp" "$DESTDIR$2"
  rm -f "$tmp"
  installed+=("$DESTDIR$2")
}
link() { # link TARGET NAME (in LIBDIR)
  ln -sfn "$1" "$DESTDIR$LIBDIR/$2"
  installed+=("$DESTDIR$LIBDIR/$2 -> $1")
}

cmake_dir="$LIBDIR/cmake/gitlab_runner_api"
install -d "$DESTDIR$LIBDIR" "$DESTDIR$LIBDIR/pkgconfig" "$DESTDIR$cmake_dir" "$DESTDIR$INCLUDEDIR" "$DESTDIR$BINDIR"

# ---- libraries, headers, program -------------------------------------------------------------

put 755 "$shared_lib" "$LIBDIR/$real_name"
link "$real_name" "$soname"
link "$soname" libgitlab_runner_api.so
put 644 "$static_lib" "$LIBDIR/libgitlab_runner_api.a"
put 644 "$header" "$INCLUDEDIR/gitlab_runner_api.h"
put 644 "$header_hpp" "$INCLUDEDIR/gitlab_runner_api.hpp"
put 755 "$register_runner" "$BINDIR/register-runner"

# ---- pkg-config -------------------------------------------------------------------------------

write 644 "$LIBDIR/pkgconfig/gitlab_runner_api.pc" <<EOF
prefix=$PREFIX
exec_prefix=\${prefix}
libdir=$(pc_path "$LIBDIR" exec_prefix)
includedir=$(pc_path "$INCLUDEDIR" prefix)

Name: gitlab_runner_api
Description: $description
Version: $version
Libs: -L\${libdir} -lgitlab_runner_api
Libs.private: $NATIVE_STATIC_LIBS
Cflags: -I\${includedir}
EOF

# ---- CMake package ----------------------------------------------------------------------------

# From the config file's directory up to PREFIX.
if [ "${cmake_dir#"$PREFIX"/}" != "$cmake_dir" ]; then
  up="$(echo "${cmake_dir#"$PREFIX"/}" | sed 's#[^/][^/]*#..#g')"
  prefix_line="get_filename_component(_glr_prefix \"\${CMAKE_CURRENT_LIST_DIR}/$up\" ABSOLUTE)"
else
  prefix_line="set(_glr_prefix \"$PREFIX\")"
fi
cmake_libs="$(echo "$NATIVE_STATIC_LIBS" | sed 's/-l//g; s/ /;/g')"
pointer_size="$(($(getconf LONG_BIT) / 8))"

write 644 "$cmake_dir/gitlab_runner_apiConfig.cmake" <<EOF
# CMake package of gitlab_runner_api $version (ABI $abi), written by scripts/install.sh.
#
#   find_package(gitlab_runner_api 0.1 REQUIRED)
#   target_link_libraries(my_runner PRIVATE gitlab_runner_api::gitlab_runner_api)         # shared
#   target_link_libraries(my_runner PRIVATE gitlab_runner_api::gitlab_runner_api_static)  # static
#
# Both imported targets carry the include directory: gitlab_runner_api.h (C99, C++11) and
# gitlab_runner_api.hpp (the C++17 wrapper). Variables set: gitlab_runner_api_VERSION,
# gitlab_runner_api_ABI_VERSION, gitlab_runner_api_INCLUDE_DIRS, gitlab_runner_api_LIBRARIES
# (the shared target).

$prefix_line
set(_glr_libdir "$(cmake_path "$LIBDIR")")
set(_glr_includedir "$(cmake_path "$INCLUDEDIR")")

foreach(_glr_file "\${_glr_libdir}/$real_name" "\${_glr_libdir}/libgitlab_runner_api.a"
                  "\${_glr_includedir}/gitlab_runner_api.h")
  if(NOT EXISTS "\${_glr_file}")
    set(gitlab_runner_api_FOUND FALSE)
    set(gitlab_runner_api_NOT_FOUND_MESSAGE "\${_glr_file} is missing: reinstall gitlab_runner_api")
    unset(_glr_file)
    return()
  endif()
endforeach()
unset(_glr_file)

if(NOT TARGET gitlab_runner_api::gitlab_runner_api)
  add_library(gitlab_runner_api::gitlab_runner_api SHARED IMPORTED)
  set_target_properties(gitlab_runner_api::gitlab_runner_api PROPERTIES
    IMPORTED_LOCATION "\${_glr_libdir}/$real_name"
    IMPORTED_SONAME "$soname"
    INTERFACE_INCLUDE_DIRECTORIES "\${_glr_includedir}")
endif()
if(NOT TARGET gitlab_runner_api::gitlab_runner_api_static)
  add_library(gitlab_runner_api::gitlab_runner_api_static STATIC IMPORTED)
  set_target_properties(gitlab_runner_api::gitlab_runner_api_static PROPERTIES
    IMPORTED_LOCATION "\${_glr_libdir}/libgitlab_runner_api.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES "C"
    INTERFACE_INCLUDE_DIRECTORIES "\${_glr_includedir}"
    INTERFACE_LINK_LIBRARIES "$cmake_libs")
endif()

set(gitlab_runner_api_VERSION "$version")
set(gitlab_runner_api_ABI_VERSION $abi)
set(gitlab_runner_api_INCLUDE_DIRS "\${_glr_includedir}")
set(gitlab_runner_api_LIBRARIES gitlab_runner_api::gitlab_runner_api)
unset(_glr_prefix)
unset(_glr_libdir)
unset(_glr_includedir)
EOF

write 644 "$cmake_dir/gitlab_runner_apiConfigVersion.cmake" <<EOF
# Which versions requested from find_package() gitlab_runner_api $version satisfies, written by
# scripts/install.sh. A version is compatible when it is not older than the one requested and has
# the same ABI: before 1.0 every minor release may change the ABI (same major.minor needed),
# from 1.0 on only a major release does (same major needed). Ranges (0.1...<0.3) are honoured.
# A $pointer_size-byte-pointer build is unsuitable for a project with another pointer size.

set(PACKAGE_VERSION "$version")
set(PACKAGE_VERSION_COMPATIBLE FALSE)
set(PACKAGE_VERSION_EXACT FALSE)

# _glr_same_abi(<requested version> <result variable>)
function(_glr_same_abi requested result)
  string(REPLACE "." ";" _have "\${PACKAGE_VERSION}")
  string(REPLACE "." ";" _want "\${requested}")
  list(GET _have 0 _have_major)
  list(GET _have 1 _have_minor)
  list(GET _want 0 _want_major)
  list(LENGTH _want _want_count)
  set(_same FALSE)
  if(_want_major EQUAL _have_major)
    set(_same TRUE)
    if(_have_major EQUAL 0 AND _want_count GREATER 1)
      list(GET _want 1 _want_minor)
      if(NOT _want_minor EQUAL _have_minor)
        set(_same FALSE)
      endif()
    endif()
  endif()
  set(\${result} \${_same} PARENT_SCOPE)
endfunction()

if(PACKAGE_FIND_VERSION_RANGE)
  set(_glr_in_range TRUE)
  if(PACKAGE_FIND_VERSION_RANGE_MIN STREQUAL "INCLUDE" AND PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION_MIN)
    set(_glr_in_range FALSE)
  elseif(PACKAGE_FIND_VERSION_RANGE_MIN STREQUAL "EXCLUDE" AND PACKAGE_VERSION VERSION_LESS_EQUAL PACKAGE_FIND_VERSION_MIN)
    set(_glr_in_range FALSE)
  endif()
  if(PACKAGE_FIND_VERSION_RANGE_MAX STREQUAL "INCLUDE" AND PACKAGE_VERSION VERSION_GREATER PACKAGE_FIND_VERSION_MAX)
    set(_glr_in_range FALSE)
  elseif(PACKAGE_FIND_VERSION_RANGE_MAX STREQUAL "EXCLUDE" AND PACKAGE_VERSION VERSION_GREATER_EQUAL PACKAGE_FIND_VERSION_MAX)
    set(_glr_in_range FALSE)
  endif()
  _glr_same_abi("\${PACKAGE_FIND_VERSION_MIN}" _glr_same)
  if(_glr_in_range AND _glr_same)
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  endif()
  unset(_glr_in_range)
  unset(_glr_same)
elseif(PACKAGE_FIND_VERSION)
  _glr_same_abi("\${PACKAGE_FIND_VERSION}" _glr_same)
  if(_glr_same AND NOT PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  endif()
  if(PACKAGE_VERSION VERSION_EQUAL PACKAGE_FIND_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
  unset(_glr_same)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()

if(CMAKE_SIZEOF_VOID_P AND NOT CMAKE_SIZEOF_VOID_P STREQUAL "$pointer_size")
  math(EXPR _glr_bits "$pointer_size * 8")
  set(PACKAGE_VERSION "\${PACKAGE_VERSION} (\${_glr_bits}bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
  unset(_glr_bits)
endif()
EOF

echo "install.sh: installed gitlab_runner_api $version (ABI $abi) into ${DESTDIR}${PREFIX}:" >&2
printf '  %s\n' "${installed[@]}" >&2
