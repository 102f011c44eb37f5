#!/bin/sh
# Prove every runtime dependency of the board install (with the tflite extra) has a
# manylinux aarch64 wheel for CPython 3.11: pip resolves for that platform without
# building anything, and fails on the first package that only has an sdist.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
dest=${ARM64_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeprobe/arm64-wheels}
mkdir -p "$dest"
reqs=$("$py" - "$here/pyproject.toml" <<'PY'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["tflite"]))
PY
)
echo "$reqs" > "$dest/requirements.txt"
# One requirement at a time (with its dependencies), so every package without a wheel is named, not just the first.
missing=""
for req in $reqs; do
  if ! "$py" -m pip download --quiet --dest "$dest" \
      --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
      --platform manylinux_2_17_aarch64 --platform linux_aarch64 \
      --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
      --only-binary=:all: "$req" >"$dest/last.log" 2>&1; then
    missing="$missing $req"
    grep -E '^ERROR' "$dest/last.log" | head -2 >&2
  fi
done
n=$(ls "$dest"/*.whl 2>/dev/null | wc -l)
if [ -n "$missing" ]; then
  echo "arm64 (manylinux aarch64, cp311): no wheel for:$missing ($n other wheels resolved in $dest)" >&2
  exit 1
fi
echo "arm64 (manylinux aarch64, cp311): all runtime dependencies resolve to wheels ($n wheels in $dest)"
