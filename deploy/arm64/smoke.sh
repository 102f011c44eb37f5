#!/bin/bash
# make arm64-smoke: run edgeprobe as a board would, on aarch64 CPython under user-mode emulation, and compare
# its model outputs with x86_64's.
#
#   1. an arm64 Debian bookworm root (debootstrap --foreign --variant=minbase, python3 + python3-venv .debs
#      unpacked with dpkg-deb: no chroot, no second stage, nothing installed system-wide), cached in
#      ~/.cache/edgeprobe/arm64/root;
#   2. edgeprobe's own wheel, built from this tree, plus the aarch64 cp311 wheels of every dependency
#      (deploy/resolve-arm64.sh) installed with pip --target --platform --only-binary=:all:, as on a board
#      without a compiler;
#   3. under `qemu-aarch64 -L ROOT ROOT/usr/bin/python3.11` (no binfmt_misc registration):
#      edgeprobe --version, `edgeprobe run` on the demo config with --no-broker, and the suites in this
#      folder, whose golden files (outputs and the decoded frames themselves) are recorded on x86_64 and
#      checked on aarch64 fed those very frames;
#   4. compare.py prints the verdicts and the per-model deltas, and fails when outputs disagree on the same
#      frames; a decoder that gives aarch64 other pixels is printed as its own warning, never a failure.
#
# The emulator: Debian 12's qemu 7.2 kills onnxruntime 1.28.0 .. 1.32.0 at import and ai-edge-litert 2.3.0 in
# an XNNPACK inference (SIGSEGV); Debian 13's qemu 10.0 runs both. So unless the system's qemu is 10 or
# newer (or QEMU_AARCH64 names one), this fetches Debian 13's qemu-user package with apt-get download into
# the cache (private apt state, unpacked with dpkg-deb, nothing installed) and runs it. Whatever runs, the
# resolved wheels are tried first; one that dies is replaced in the emulated environment only by
# ORT_EMULATED (1.27.0) or LITERT_EMULATED (1.4.0), the newest that ran under qemu 7.2.
#
# Environment: ARM64_SMOKE_FRAMES (demo-config frames, default 12), ARM64_OUT (logs and results, default
# build/arm64-smoke), ARM64_REDUCED=1 (imports plus a handful of frames only, for `make test`),
# ARM64_TARGETS (wheel targets checked, default all six of deploy/resolve-arm64.sh), QEMU_AARCH64,
# ORT_EMULATED, LITERT_EMULATED, PYTHON (the x86_64 venv python that builds the wheel and records golden
# outputs).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
py=${PYTHON:-$here/.venv/bin/python}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/edgeprobe
root=$cache/arm64/root
out=${ARM64_OUT:-$here/build/arm64-smoke}
frames=${ARM64_SMOKE_FRAMES:-12}
ort_pin=${ORT_EMULATED:-1.27.0}
litert_pin=${LITERT_EMULATED:-1.4.0}
wheels=$cache/arm64-wheels/aarch64-cp311
platforms=(--platform manylinux2014_aarch64)
for m in $(seq 17 35); do platforms+=(--platform "manylinux_2_${m}_aarch64"); done
say() { printf '\n== %s\n' "$*"; }

for tool in qemu-aarch64-static debootstrap dpkg-deb apt-get; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
    echo "arm64-smoke: $tool is missing; install Debian's qemu-user-static and debootstrap (make arm64-tools, as root)" >&2
    exit 2
  fi
done
debootstrap=$(command -v debootstrap || echo /usr/sbin/debootstrap)
mkdir -p "$cache/arm64" "$out"
exec > >(tee "$out/smoke.log") 2>&1
echo "arm64-smoke $(date -u +%FT%TZ) on $(uname -m), log in $out/smoke.log"
rm -rf "$out/golden" "$out/results" "$out"/spool-arm64*
mkdir -p "$out/golden" "$out/results"

# the Debian mirror this machine's apt uses, so the root and the emulator come from the same registry
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1 || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)

# --- 0. the emulator --------------------------------------------------------------------------------------
qemu_major() { "$1" --version 2>/dev/null | sed -n 's/.*version \([0-9][0-9]*\)\..*/\1/p' | head -1; }
fetch_qemu() {  # fetch_qemu DIR: Debian 13's qemu-user (static binaries) unpacked into DIR, or fail
  local dir=$1 st=$1.apt
  [ -n "$mirror" ] || return 1
  rm -rf "$st" "$dir.tmp" && mkdir -p "$st/lists/partial" "$st/archives/partial" "$dir.tmp"
  echo "deb $mirror trixie main" >"$st/sources.list"
  local opts=(-o "Dir::Etc::sourcelist=$st/sources.list" -o Dir::Etc::sourceparts=/nonexistent
              -o "Dir::State::Lists=$st/lists" -o "Dir::Cache=$st" -o Dir::State::status=/dev/null
              -o Debug::NoLocking=1 -o "APT::Sandbox::User=$(id -un)")
  apt-get "${opts[@]}" -qq update && (cd "$st" && apt-get "${opts[@]}" -qq download qemu-user) \
    && dpkg-deb -x "$st"/qemu-user_*.deb "$dir.tmp" && "$dir.tmp/usr/bin/qemu-aarch64" --version >/dev/null \
    && rm -rf "$dir" "$st" && mv "$dir.tmp" "$dir"
}
qemu=${QEMU_AARCH64:-$(command -v qemu-aarch64-static || echo /usr/bin/qemu-aarch64-static)}
qemu_sys_major=$(qemu_major "$qemu")
if [ -z "${QEMU_AARCH64:-}" ] && [ "${qemu_sys_major:-0}" -lt 10 ]; then
  qemu_dir=$cache/arm64/qemu-trixie
  if [ ! -x "$qemu_dir/usr/bin/qemu-aarch64" ] && [ "${ARM64_REDUCED:-0}" != 1 ]; then
    say "the system's $("$qemu" --version | head -1) is older than 10: fetching Debian 13's qemu-user into $qemu_dir"
    fetch_qemu "$qemu_dir" >"$cache/arm64/qemu-fetch.log" 2>&1 \
      || { tail -5 "$cache/arm64/qemu-fetch.log"; echo "could not fetch it: staying with the system's qemu"; }
  fi
  if [ -x "$qemu_dir/usr/bin/qemu-aarch64" ]; then qemu=$qemu_dir/usr/bin/qemu-aarch64; fi
fi
echo "emulator: $qemu ($("$qemu" --version | head -1))"

# --- 1. the arm64 root ----------------------------------------------------------------------------------
if [ ! -f "$root/.edgeprobe-ready" ]; then
  say "building the arm64 Debian bookworm root in $root (once; ~1 min)"
  rm -rf "$root.tmp"
  "$debootstrap" --foreign --arch=arm64 --variant=minbase --include=python3,python3-venv bookworm "$root.tmp" ${mirror:+"$mirror"} \
    >"$cache/arm64/debootstrap.log" 2>&1 || { tail -20 "$cache/arm64/debootstrap.log" >&2; exit 1; }
  # --foreign unpacks only the required packages; the included ones wait as .debs: unpack them all
  for deb in "$root.tmp"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$root.tmp"; done
  rm -f "$root.tmp"/var/cache/apt/archives/*.deb
  "$qemu" -L "$root.tmp" "$root.tmp/usr/bin/python3.11" -c 'import platform; assert platform.machine() == "aarch64"'
  touch "$root.tmp/.edgeprobe-ready"
  rm -rf "$root" && mv "$root.tmp" "$root"
fi
# from $out, so this tree's own edgeprobe/ folder cannot shadow the installed wheel
# with the aarch64 site on its path (never exported: x86_64's python must not see aarch64 wheels)
run_arm64() { (cd "$out" && PYTHONPATH=$arm_path "$qemu" -L "$root" "$root/usr/bin/python3.11" "$@"); }

# --- 2. edgeprobe's wheel and its aarch64 dependencies --------------------------------------------------
if [ "${ARM64_REDUCED:-0}" != 1 ]; then
  say "wheels only: every dependency of edgeprobe and edgeprobe[tflite] for aarch64 and x86_64 (deploy/resolve-arm64.sh)"
  PYTHON="$py" sh deploy/resolve-arm64.sh
  [ -d "$wheels" ] || { echo "arm64-smoke: ARM64_TARGETS must include aarch64:3.11, the emulated root's Python" >&2; exit 2; }
fi
rm -rf "$out/dist"
isolation=()
"$py" -c 'import setuptools' 2>/dev/null && isolation=(--no-build-isolation)  # no index needed for the build
"$py" -m pip wheel --quiet --disable-pip-version-check --no-deps "${isolation[@]}" --wheel-dir "$out/dist" . \
  >"$out/wheel.log" 2>&1 || { tail -20 "$out/wheel.log" >&2; exit 1; }
wheel=$(ls "$out"/dist/edgeprobe-*.whl)
echo "edgeprobe wheel: $(basename "$wheel")"

pip_target() {  # pip_target DIR ARGS...: install aarch64 cp311 wheels only, from the cached wheels
  local dir=$1; shift
  "$py" -m pip install --quiet --disable-pip-version-check --target "$dir" "${platforms[@]}" \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none --only-binary=:all: "$@"
}
# dependencies keyed by the wheel set, so a new dependency or version makes a fresh site; the reduced form
# (make test) takes the newest site a full smoke left and touches no index
if [ "${ARM64_REDUCED:-0}" = 1 ]; then
  site=$(ls -td "$cache"/arm64/site-*/ 2>/dev/null | head -1); site=${site%/}
  [ -f "$site/.edgeprobe-ready" ] || { echo "arm64-smoke: no aarch64 site cached yet; run make arm64-smoke" >&2; exit 2; }
else
  deps_key=$(ls "$wheels"/*.whl | xargs -n1 basename | sort | sha256sum | cut -c1-12)
  site=$cache/arm64/site-$deps_key
fi
if [ ! -f "$site/.edgeprobe-ready" ]; then
  say "installing the dependencies for aarch64 into $site (pip --target --platform --only-binary=:all:)"
  rm -rf "$site"
  pip_target "$site" --no-index --find-links "$wheels" --find-links "$out/dist" "edgeprobe[tflite]"
  rm -rf "$site"/edgeprobe "$site"/edgeprobe-*.dist-info "$site/bin"  # the tree's own wheel goes in below
  touch "$site/.edgeprobe-ready"
fi
rm -rf "$out/site-edgeprobe"
pip_target "$out/site-edgeprobe" --no-deps "$wheel"
arm_path=$out/site-edgeprobe:$site
export EDGEPROBE_ASSETS=${EDGEPROBE_ASSETS:-$cache/assets}
export ARM64_GOLDEN=$out/golden

# --- ONNX Runtime under the emulator -------------------------------------------------------------------
# a wheel that ran under this emulator once runs again: the verdict is kept per (emulator, wheel), so the
# reduced form in `make test` does not pay an emulated import for it
emulator_key=$("$qemu" --version | head -1 | sha256sum | cut -c1-12)
ran_before() { [ -f "$cache/arm64/ran-$emulator_key-$1" ]; }
ran_now() { touch "$cache/arm64/ran-$emulator_key-$1"; }
ort_resolved=$(ls "$site" | sed -n 's/^onnxruntime-\(.*\)\.dist-info$/\1/p')
if ran_before "onnxruntime-$ort_resolved" \
    || { run_arm64 -c "import onnxruntime" >"$out/ort-import.log" 2>&1 && ran_now "onnxruntime-$ort_resolved"; }; then
  echo "onnxruntime $ort_resolved (the resolved aarch64 wheel) imports under qemu"
  ort_used=$ort_resolved
else
  rc=$?
  ort_site=$cache/arm64/onnxruntime-$ort_pin
  if [ ! -f "$ort_site/.edgeprobe-ready" ]; then
    rm -rf "$ort_site"
    pip_target "$ort_site" --no-deps "onnxruntime==$ort_pin"
    touch "$ort_site/.edgeprobe-ready"
  fi
  arm_path=$out/site-edgeprobe:$ort_site:$site
  echo "onnxruntime $ort_resolved's aarch64 wheel dies at import under $("$qemu" --version | head -1)" \
    "(exit $rc); the emulated run uses onnxruntime $ort_pin, the newest that ran under qemu 7.2 when bisected"
  ort_used=$ort_pin
fi

# --- LiteRT under the emulator: the same, for an XNNPACK inference (ai-edge-litert 2.3.0 segfaults in it
# under qemu 7.2 when this was written, runs under qemu 10.0; 1.4.0 runs under both)
litert_resolved=$(ls "$site" | sed -n 's/^ai_edge_litert-\(.*\)\.dist-info$/\1/p')
litert_probe="
import numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter('$EDGEPROBE_ASSETS/selfie_segmentation.tflite', num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d['index'], np.zeros(d['shape'], np.float32))
it.invoke()
"
if [ "${ARM64_REDUCED:-0}" = 1 ]; then
  litert_used=$litert_resolved  # the reduced form only imports LiteRT
elif ran_before "ai-edge-litert-$litert_resolved" \
    || { run_arm64 -c "$litert_probe" >"$out/litert-probe.log" 2>&1 && ran_now "ai-edge-litert-$litert_resolved"; }; then
  echo "ai-edge-litert $litert_resolved (the resolved aarch64 wheel) runs an XNNPACK inference under qemu"
  litert_used=$litert_resolved
else
  rc=$?
  litert_site=$cache/arm64/ai-edge-litert-$litert_pin
  if [ ! -f "$litert_site/.edgeprobe-ready" ]; then
    rm -rf "$litert_site"
    pip_target "$litert_site" --no-deps "ai-edge-litert==$litert_pin"
    touch "$litert_site/.edgeprobe-ready"
  fi
  arm_path=$litert_site:$arm_path
  echo "ai-edge-litert $litert_resolved's aarch64 wheel dies in an XNNPACK inference under $("$qemu" --version | head -1)" \
    "(exit $rc);" \
    "the emulated run uses ai-edge-litert $litert_pin, the newest that ran under qemu 7.2 when tried"
  litert_used=$litert_pin
fi

# --- 3. the aarch64 runs --------------------------------------------------------------------------------
say "aarch64: interpreter, imports and edgeprobe --version"
run_arm64 -c "
import platform, sys
import cv2, numpy, onnxruntime, ai_edge_litert.interpreter
import edgeprobe.harness.hdr
print(platform.machine(), 'CPython', platform.python_version(), '| numpy', numpy.__version__, '| opencv', cv2.__version__,
      '| onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())
assert platform.machine() == 'aarch64', platform.machine()
assert onnxruntime.__version__ == '$ort_used'
"
run_arm64 -m edgeprobe --version

# The demo config with two changes for emulation, where an inference costs ~1 s: reporting windows closed by
# frame count only (a 10-second window holds a handful of emulated frames), and no breaking-point search (its
# ~10 looks x 3 perturbations x the sampled frames would take the emulator a quarter of an hour; the x86_64
# tests cover it). Probes, relations, health, drift and the spool run as configured.
sed -e 's/^  seconds: 10$/  seconds: 86400   # arm64-smoke: windows by frame count under emulation/' \
    -e '/^  breaking_point:/,/^  [a-z]/s/^    enabled: true/    enabled: false   # arm64-smoke: too slow emulated/' \
  examples/demo-agent.yaml >"$out/demo-agent.yaml"
grep -q 'seconds: 86400' "$out/demo-agent.yaml" && grep -q 'enabled: false   # arm64-smoke' "$out/demo-agent.yaml" \
  || { echo "arm64-smoke: examples/demo-agent.yaml no longer has the windows/breaking_point lines this edits" >&2; exit 2; }
if [ "${ARM64_REDUCED:-0}" = 1 ]; then
  sed -i 's/^  warmup: 10$/  warmup: 2   # arm64-smoke reduced form/' "$out/demo-agent.yaml"  # ~1 s an emulated warm-up
  say "aarch64: edgeprobe run, demo config, $frames frames, no broker (reduced smoke)"
  run_arm64 -m edgeprobe run -c "$out/demo-agent.yaml" --no-broker --max-frames "$frames" \
    --spool "$out/spool-arm64" --json >"$out/results/run-aarch64.json"
  "$py" deploy/arm64/compare.py --run "$out/results/run-aarch64.json" --frames "$frames"
  exit 0
fi

suites=(onnx detector tflite)
say "x86_64: golden outputs recorded, then the same suites checked"
for s in "${suites[@]}"; do
  "$py" -m edgeprobe golden record "deploy/arm64/suite-$s.yaml" -o "$ARM64_GOLDEN/$s.npz" >"$out/results/$s-record.log" 2>&1 \
    || { cat "$out/results/$s-record.log" >&2; exit 1; }
  tr -s ' \n' ' ' <"$out/results/$s-record.log"; echo
  "$py" -m edgeprobe check "deploy/arm64/suite-$s.yaml" --json >"$out/results/$s-x86_64.json" 2>"$out/results/$s-x86_64.err" || true
done
say "aarch64 (emulated): the same suites, golden checks against the x86_64 outputs"
for s in "${suites[@]}"; do
  echo "suite $s ..."
  rc=0
  run_arm64 -m edgeprobe check "$here/deploy/arm64/suite-$s.yaml" --json >"$out/results/$s-aarch64.json" 2>"$out/results/$s-aarch64.err" || rc=$?
  echo "$rc" >"$out/results/$s-aarch64.rc"
done

say "aarch64: edgeprobe run, demo config, $frames frames, no broker"
run_arm64 -m edgeprobe run -c "$out/demo-agent.yaml" --no-broker --max-frames "$frames" \
  --spool "$out/spool-arm64" --json >"$out/results/run-aarch64.json"

# --- 4. verdicts ----------------------------------------------------------------------------------------
say "verdicts (x86_64 vs emulated aarch64; onnxruntime $ort_used and ai-edge-litert $litert_used under $("$qemu" --version | head -1))"
"$py" deploy/arm64/compare.py --run "$out/results/run-aarch64.json" --frames "$frames" \
  --results "$out/results" --markdown "$out/deltas.md" "${suites[@]}"
