#!/bin/sh
# A venv for edgeprobe that keeps the board's own OpenCV and numpy.
#
#   deploy/board-venv.sh VENV_DIR [SOURCE_DIR] [SYSTEM_PYTHON]
#
# Board OpenCV builds (Debian's python3-opencv, JetPack's) have GStreamer, so CSI cameras
# (nvarguscamerasrc) and GStreamer pipelines open; PyPI's opencv-python-headless has not. They are
# compiled against the system numpy (1.x on Debian 12 and JetPack 6), and a pip numpy 2 or a pip
# cv2 in the venv would shadow them. So: a venv with --system-site-packages, edgeprobe without its
# dependencies, then every other core dependency from pyproject.toml, pinned so pip keeps the
# system's numpy. Used by `make gst-venv` and deploy/docker/jetson.Dockerfile.
set -eu
VENV=${1:?usage: board-venv.sh VENV_DIR [SOURCE_DIR] [SYSTEM_PYTHON]}
SRC=${2:-.}
PY=${3:-/usr/bin/python3}
EDITABLE=${EDITABLE:-}

"$PY" -c "import cv2, numpy" 2>/dev/null || {
  echo "$PY cannot import cv2 and numpy: install the board's OpenCV first (apt-get install python3-opencv)" >&2
  exit 2
}
"$PY" -m venv --system-site-packages "$VENV"
# pip sees the system numpy; the constraint forbids replacing it (a cv2 built for numpy 1.x breaks on 2.x).
NUMPY=$("$VENV/bin/python" -c "import numpy; print(numpy.__version__)")
CONSTRAINTS="$VENV/system-constraints.txt"
echo "numpy==$NUMPY" > "$CONSTRAINTS"
DEPS=$("$VENV/bin/python" - "$SRC/pyproject.toml" <<'PYEOF'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
# the system provides these two; every other core dependency comes from pip
for dep in deps:
    name = re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].lower()
    if name not in {"numpy", "opencv-python-headless", "opencv-python"}:
        print(dep)
PYEOF
)
# shellcheck disable=SC2086  # one requirement per word is intended
"$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" $DEPS
"$VENV/bin/python" -m pip install -q --no-deps ${EDITABLE:+-e} "$SRC"
"$VENV/bin/python" -c "import cv2, numpy, edgeprobe.agent.runner; print('board venv:', cv2.__file__, 'numpy', numpy.__version__)"
