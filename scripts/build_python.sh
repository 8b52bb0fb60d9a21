#!/usr/bin/env bash
# Build CPython from source into a cached prefix and print the interpreter's path on stdout.
#
# The one recipe for nogil-bench's interpreter: local development, CI and the Docker builder
# stage all call this script. It is idempotent: an existing build whose version, GIL mode and
# optimization level match is reused in milliseconds.
#
# Source: $CPYTHON_TARBALL when set (offline builds), otherwise the release from python.org.
# Either way the SHA-256 below is checked before anything is built.
set -euo pipefail

readonly PY_VERSION=3.14.7
readonly PY_SHA256=3b48dac8fb59f62eaa67ac83c1eb12bda1b7a08406dd286e252c11a66be27f81
readonly PY_URL="https://www.python.org/ftp/python/${PY_VERSION}/Python-${PY_VERSION}.tar.xz"
readonly PY_MINOR=${PY_VERSION%.*}

# Debian packages the build needs; `--deps` prints them for apt-get (.ci/run, Dockerfile).
readonly DEBIAN_PACKAGES=(
  build-essential pkg-config xz-utils curl ca-certificates
  libssl-dev zlib1g-dev libbz2-dev liblzma-dev libffi-dev libsqlite3-dev
  libreadline-dev libncurses-dev uuid-dev libzstd-dev
)
# header:package — a header that the compiler cannot find means that package is missing.
readonly REQUIRED_HEADERS=(
  openssl/ssl.h:libssl-dev zlib.h:zlib1g-dev bzlib.h:libbz2-dev lzma.h:liblzma-dev
  ffi.h:libffi-dev sqlite3.h:libsqlite3-dev readline/readline.h:libreadline-dev
  curses.h:libncurses-dev uuid/uuid.h:uuid-dev zstd.h:libzstd-dev
)
# Modules that silently go missing when a -dev package is absent; the build is checked for them.
readonly REQUIRED_MODULES=(ssl zlib bz2 lzma ctypes sqlite3 readline curses uuid compression.zstd)

usage() {
  cat <<USAGE
usage: scripts/build_python.sh [--gil] [--optimized] [--prefix DIR] [--deps] [-h]

Builds CPython ${PY_VERSION} (free-threaded, --disable-gil, unless --gil) and prints the path
of its interpreter. Reuses an existing build in the prefix when it matches.

  --gil          build the default variant with the GIL (for comparisons), not 3.14t
  --optimized    PGO + LTO (--enable-optimizations --with-lto); slow to build, used by Docker
  --prefix DIR   install here (default: a directory under \$NOGIL_BENCH_CACHE_DIR,
                 which defaults to \${XDG_CACHE_HOME:-~/.cache}/nogil-bench)
  --deps         print the Debian packages the build needs, one line, and exit

environment:
  CPYTHON_TARBALL  path of Python-${PY_VERSION}.tar.xz to build from instead of downloading
USAGE
}

log() { printf 'build_python: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

freethreaded=1
optimized=0
prefix=""
while (($#)); do
  case "$1" in
    --gil) freethreaded=0 ;;
    --optimized) optimized=1 ;;
    --prefix)
      (($# >= 2)) || die "--prefix needs a directory"
      prefix=$2
      shift
      ;;
    --deps)
      echo "${DEBIAN_PACKAGES[*]}"
      exit 0
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

cache_dir=${NOGIL_BENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nogil-bench}
abi_suffix=$([[ $freethreaded == 1 ]] && echo t || true)
if [[ -z $prefix ]]; then
  prefix="$cache_dir/cpython-${PY_VERSION}${abi_suffix}$([[ $optimized == 1 ]] && echo -pgo-lto || true)"
fi
mkdir -p "$cache_dir" "$(dirname "$prefix")"
prefix=$(cd "$(dirname "$prefix")" && pwd)/$(basename "$prefix")
python_bin="$prefix/bin/python${PY_MINOR}${abi_suffix}"

# True when the interpreter in the prefix is the requested version, GIL mode and optimization.
build_matches() {
  [[ -x $python_bin ]] || return 1
  "$python_bin" - "$PY_VERSION" "$freethreaded" "$optimized" <<'PY' 2>/dev/null
import platform, sys, sysconfig
version, freethreaded, optimized = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gil_disabled = int(sysconfig.get_config_var("Py_GIL_DISABLED") or 0)
is_optimized = int("--enable-optimizations" in (sysconfig.get_config_var("CONFIG_ARGS") or ""))
sys.exit(0 if (platform.python_version(), gil_disabled, is_optimized) == (version, freethreaded, optimized) else 1)
PY
}

# Holding a lock keeps two concurrent callers from building into the same prefix.
if command -v flock >/dev/null; then
  exec 9>"$cache_dir/$(basename "$prefix").lock"
  flock 9
fi

if build_matches; then
  echo "$python_bin"
  exit 0
fi

check_build_tools() {
  local missing=() tool
  for tool in cc make pkg-config tar xz; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if [[ -z ${CPYTHON_TARBALL:-} ]] && ! command -v curl >/dev/null; then missing+=(curl); fi
  local entry header package
  for entry in "${REQUIRED_HEADERS[@]}"; do
    header=${entry%%:*}
    package=${entry#*:}
    if command -v cc >/dev/null && ! printf '#include <%s>\n' "$header" | cc -E -x c - >/dev/null 2>&1; then
      missing+=("$header (Debian: $package)")
    fi
  done
  if ((${#missing[@]})); then
    log "missing build dependencies:"
    printf '  - %s\n' "${missing[@]}" >&2
    die "install them first; on Debian/Ubuntu: apt-get install -y ${DEBIAN_PACKAGES[*]}"
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# Prints the path of a verified source tarball.
fetch_source() {
  local tarball
  if [[ -n ${CPYTHON_TARBALL:-} ]]; then
    tarball=$CPYTHON_TARBALL
    [[ -f $tarball ]] || die "CPYTHON_TARBALL=$tarball: no such file"
  else
    tarball="$cache_dir/src/Python-${PY_VERSION}.tar.xz"
    if [[ ! -f $tarball ]]; then
      mkdir -p "$(dirname "$tarball")"
      log "downloading $PY_URL"
      curl --fail --location --silent --show-error --output "$tarball.part" "$PY_URL" ||
        die "could not download $PY_URL; offline? set CPYTHON_TARBALL=/path/to/Python-${PY_VERSION}.tar.xz"
      mv "$tarball.part" "$tarball"
    fi
  fi
  local actual
  actual=$(sha256_of "$tarball")
  if [[ $actual != "$PY_SHA256" ]]; then
    die "SHA-256 mismatch for $tarball: expected $PY_SHA256, got $actual. It is not the CPython ${PY_VERSION} release tarball; refusing to build it."
  fi
  echo "$tarball"
}

# A given tarball is verified before the tools are: a wrong file is the first thing to report.
# A download waits until the tools are known to be there.
if [[ -n ${CPYTHON_TARBALL:-} ]]; then
  tarball=$(fetch_source)
  check_build_tools
else
  check_build_tools
  tarball=$(fetch_source)
fi

workdir=$(mktemp -d "$cache_dir/build.XXXXXX")
trap 'rm -rf "$workdir"' EXIT
build_log="$cache_dir/build-python${PY_MINOR}${abi_suffix}.log"

configure_args=(--prefix="$prefix" --with-ensurepip=install --without-static-libpython)
[[ $freethreaded == 1 ]] && configure_args+=(--disable-gil)
[[ $optimized == 1 ]] && configure_args+=(--enable-optimizations --with-lto)

log "building CPython $PY_VERSION${abi_suffix} into $prefix (log: $build_log)"
log "configure ${configure_args[*]}"
started=$SECONDS
(
  set -e
  tar -xJf "$tarball" -C "$workdir"
  cd "$workdir/Python-$PY_VERSION"
  ./configure "${configure_args[@]}"
  make -j"$(nproc 2>/dev/null || echo 2)"
  # Install into a staging root, then move it into place, so an interrupted build never
  # leaves a half-installed prefix behind.
  make install DESTDIR="$workdir/stage"
) >"$build_log" 2>&1 || {
  tail -n 40 "$build_log" >&2
  die "the build failed; the full log is $build_log"
}

rm -rf "$prefix.old"
[[ -e $prefix ]] && mv "$prefix" "$prefix.old"
mv "$workdir/stage$prefix" "$prefix"
rm -rf "$prefix.old"

build_matches || die "the new build at $prefix does not report version $PY_VERSION with Py_GIL_DISABLED=$freethreaded"
missing_modules=$("$python_bin" - "${REQUIRED_MODULES[@]}" <<'PY'
import importlib, sys
missing = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        missing.append(name)
print(" ".join(missing))
PY
)
[[ -z $missing_modules ]] || die "the build lacks modules: $missing_modules (see $build_log)"

log "built in $((SECONDS - started)) s: $python_bin"
echo "$python_bin"
