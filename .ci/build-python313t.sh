#!/usr/bin/env bash
# Build free-threaded CPython 3.13 (python3.13t, PEP 703) from Debian 13's
# source package into a cache folder outside the repository, once.
#
#   .ci/build-python313t.sh            prints the interpreter's path
#
# Cache: $PYCONC_CACHE (default ~/.cache/pyconc)/python3.13t.  Reused when
# present.  Needs a deb-src entry for trixie (added here, on the machine's
# existing Debian mirror) and the usual build dependencies (present on the
# CI image: libssl, zlib, libffi, ...).
set -euo pipefail
cache=${PYCONC_CACHE:-$HOME/.cache/pyconc}
prefix="$cache/python3.13t"
py="$prefix/bin/python3.13t"
if [ -x "$py" ] && "$py" -c "import sys; sys.exit(sys._is_gil_enabled())" 2>/dev/null; then
  echo "$py"; exit 0
fi
mkdir -p "$cache/src"
src_list=/etc/apt/sources.list.d/pyconc-trixie-src.sources
if [ ! -f "$src_list" ]; then
  cat > "$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq >&2
for p in dpkg-dev libssl-dev zlib1g-dev libffi-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || apt-get install -y -qq "$p" >&2
done
cd "$cache/src"
if ! ls -d python3.13-3.13*/ >/dev/null 2>&1; then
  apt-get source -qq --download-only python3.13 >&2
  # unpack the upstream tarball only (Debian's patches are for its own packaging)
  tar xf "$(ls python3.13_*.orig.tar.* | grep -v "\.asc$" | head -n1)" >&2
fi
srcdir=$(ls -d Python-3.13*/ 2>/dev/null | head -n1)
[ -n "$srcdir" ] || srcdir=$(ls -d python3.13-3.13*/ | head -n1)
cd "$srcdir"
./configure -q --disable-gil --prefix="$prefix" --with-ensurepip=install >&2
make -s -j"$(nproc)" >&2
make -s altinstall >&2
"$py" -c "import sys; assert not sys._is_gil_enabled(), 'GIL is enabled'" >&2
echo "$py"
