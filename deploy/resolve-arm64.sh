#!/bin/sh
# Prove the board install needs no compiler: every runtime dependency of `pip install edgeprobe` and
# `pip install 'edgeprobe[tflite]'`, with everything they pull in, resolves to wheels for manylinux aarch64
# and x86_64 on CPython 3.10, 3.11 and 3.12. pip resolves each target with --only-binary=:all:; when one
# fails, each requirement is tried alone so every one without a wheel is named, not just the first.
#
# manylinux tags up to glibc 2.35 only: JetPack 6 is Ubuntu 22.04 (glibc 2.35), Raspberry Pi OS bookworm
# has 2.36, so a wheel that needs a newer glibc would not install on a Jetson.
#
# Environment: PYTHON (the pip to use), ARM64_WHEELS (download folder, default ~/.cache/edgeprobe/
# arm64-wheels), ARM64_TARGETS (default "aarch64:3.10 aarch64:3.11 aarch64:3.12 x86_64:3.10 x86_64:3.11
# x86_64:3.12"), ARM64_REQUIREMENTS (default: read from pyproject.toml). Wheels land in
# $ARM64_WHEELS/<arch>-cp<ver>/, where `make arm64-smoke` installs them from.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
dest=${ARM64_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeprobe/arm64-wheels}
targets=${ARM64_TARGETS:-aarch64:3.10 aarch64:3.11 aarch64:3.12 x86_64:3.10 x86_64:3.11 x86_64:3.12}
mkdir -p "$dest"
if [ -n "${ARM64_REQUIREMENTS:-}" ]; then
  reqs=$ARM64_REQUIREMENTS
else
  reqs=$("$py" - "$here/pyproject.toml" <<'PY'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(r.replace(" ", "") for r in p["dependencies"] + p["optional-dependencies"]["tflite"]))
PY
)
fi

# pip download for one target: $1 arch, $2 python version (3.11), then the requirements
fetch() {
  arch=$1; ver=$2; shift 2
  nodot=$(echo "$ver" | tr -d .)
  plats="--platform manylinux2014_$arch"
  minor=17
  while [ "$minor" -le 35 ]; do plats="$plats --platform manylinux_2_${minor}_$arch"; minor=$((minor + 1)); done
  # shellcheck disable=SC2086
  "$py" -m pip download --quiet --disable-pip-version-check --dest "$dest/$arch-cp$nodot" $plats \
    --python-version "$ver" --implementation cp --abi "cp$nodot" --abi abi3 --abi none \
    --only-binary=:all: "$@"
}

failed=0
for target in $targets; do
  arch=${target%%:*}; ver=${target#*:}
  log="$dest/$arch-cp$(echo "$ver" | tr -d .).log"
  # shellcheck disable=SC2086
  if fetch "$arch" "$ver" $reqs >"$log" 2>&1; then
    n=$(ls "$dest/$arch-cp$(echo "$ver" | tr -d .)"/*.whl 2>/dev/null | wc -l)
    echo "$arch cp$ver: every dependency is a wheel ($n wheels)"
    continue
  fi
  failed=1
  missing=""
  for req in $reqs; do
    if ! fetch "$arch" "$ver" "$req" >"$log" 2>&1; then
      # the package pip could not find as a wheel may be a dependency of $req: name both
      what=$(sed -n 's/^ERROR: No matching distribution found for \([^ ]*\).*/\1/p' "$log" | head -1)
      if [ -n "$what" ] && [ "$what" != "$req" ]; then missing="$missing $req (needs $what)"; else missing="$missing $req"; fi
    fi
  done
  echo "$arch cp$ver: no wheel for:${missing:- (pip failed, see $log)}" >&2
done
if [ "$failed" -ne 0 ]; then
  echo "some dependencies would need a compiler on the board: give each one a wheel or make it optional" >&2
  exit 1
fi
echo "every runtime dependency (core + tflite) resolves to wheels for: $targets"
