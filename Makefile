# Two entry points a fresh machine needs: `make demo` and `make test`.
# Both create .venv, install edgeprobe with its extras, install Debian's
# mosquitto when it is missing (as root), and fetch the example assets into
# ~/.cache/edgeprobe (sha256-checked, downloaded once).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS := dev,tflite,report,collector,postgres

.PHONY: demo test install broker browser systemd prometheus postgres assets lint typecheck check bench clean arm64-wheels arm64-tools arm64-smoke stream-deps ref-venv gst-venv

demo: install broker assets
	$(BIN)/edgeprobe demo

test: install broker browser systemd stream-deps prometheus postgres gst-venv assets ref-venv
	$(BIN)/python -m pytest -q

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

# mosquitto from Debian, only if no broker binary is present.
broker:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing mosquitto (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto >/dev/null; \
	else echo "mosquitto is missing: install it (e.g. sudo apt-get install mosquitto)"; exit 2; fi
	@# openssl makes the TLS certificates (deploy/mosquitto/make-certs.sh; a few seconds when missing)
	@if command -v openssl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null; \
	else echo "openssl is missing: install it (e.g. sudo apt-get install openssl)"; exit 2; fi

# Debian's chromium, headless, to render the HTML report in tests (about 20 s to install
# once apt lists are fresh); only when missing and only as root.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (Debian package, for the HTML report tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "chromium is missing: the HTML report browser test will be skipped (apt-get install chromium)"; fi

# systemd-analyze verifies deploy/systemd/edgeprobe-agent.service in tests (Debian's systemd:
# ~10 MB installed; only when missing and only as root; the test skips and says so otherwise).
systemd:
	@if command -v systemd-analyze >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; \
	else echo "systemd-analyze is missing: the unit verification test will be skipped"; fi

# promtool (Debian's prometheus) lints /metrics and checks and unit-tests deploy/prometheus/alerts.yml in tests;
# only when missing and only as root (the tests skip and say so otherwise).
prometheus:
	@if command -v promtool >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing prometheus (Debian package, for promtool in the metrics and alert tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	else echo "promtool is missing: the Prometheus lint and alert-rule tests will be skipped (apt-get install prometheus)"; fi

# Debian's PostgreSQL server binaries (initdb, postgres) for the tests that run the store on a real
# PostgreSQL (tests/pgserver.py starts a throwaway cluster on a private port; no service is enabled or used).
# Only when missing and only as root (the PostgreSQL tests skip and say so otherwise).
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing postgresql (Debian package, for the PostgreSQL store tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	else echo "PostgreSQL is missing: the PostgreSQL store tests will be skipped (apt-get install postgresql)"; fi

# GStreamer's RTSP server for the RTSP source test, run by Debian's /usr/bin/python3 (python3-gi);
# about 18 s to install once apt lists are fresh; only when missing and only as root (else the test skips).
stream-deps:
	@if /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing gst-rtsp-server (Debian packages, for the RTSP source test)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	    gstreamer1.0-plugins-ugly gstreamer1.0-libav >/dev/null; \
	else echo "gst-rtsp-server is missing: the RTSP source test will be skipped"; fi

# A board-style venv: Debian's python3-opencv (GStreamer on, built for Debian's numpy 1.24) through
# --system-site-packages, edgeprobe installed beside it without replacing either (deploy/board-venv.sh,
# the Jetson image does the same). The GStreamer source tests and the numpy 1.x test run the agent in it;
# they skip, saying why, when it cannot be made. python3-opencv only when missing and only as root
# (~40 s to install once apt lists are fresh; the venv ~60 s with a warm pip cache).
GST_VENV := .venv-gst
gst-venv: $(GST_VENV)/.installed-stamp

$(GST_VENV)/.installed-stamp: pyproject.toml deploy/board-venv.sh
	@if /usr/bin/python3 -c "import cv2, numpy" >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing python3-opencv (Debian package, for the GStreamer source tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    python3-opencv python3-venv gstreamer1.0-plugins-base gstreamer1.0-plugins-good >/dev/null || true; \
	fi
	@rm -rf $(GST_VENV)
	@if EDITABLE=1 sh deploy/board-venv.sh $(GST_VENV) . /usr/bin/python3; then touch $@; \
	else rm -rf $(GST_VENV); echo "no board venv: the GStreamer source tests will be skipped"; fi

# Every runtime dependency of `pip install edgeprobe` and `edgeprobe[tflite]` as wheels (no compiler on the
# board) for manylinux (glibc <= 2.35) aarch64 and x86_64, CPython 3.10-3.12, or fail naming each one
# without a wheel. Not part of `make test` (it needs the package index: ~60 s cold, ~10 s a target warm);
# tests/deploy/test_resolve_arm64.py checks the script's verdicts offline. Wheels stay in
# ~/.cache/edgeprobe/arm64-wheels/<arch>-cp<ver>/ for `make arm64-smoke`.
arm64-wheels: install
	PYTHON=$(BIN)/python sh deploy/resolve-arm64.sh

# Debian's qemu-user-static and debootstrap for the emulated aarch64 runs; only when missing and only as
# root. Nothing is registered with binfmt_misc: deploy/arm64/smoke.sh calls qemu directly (Debian 13's, fetched
# into the cache without installing it, where this qemu is older than 10).
arm64-tools:
	@if command -v qemu-aarch64-static >/dev/null 2>&1 && { command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ]; }; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing qemu-user-static and debootstrap (Debian packages, for the aarch64 emulation)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    qemu-user-static debootstrap >/dev/null; \
	else echo "qemu-user-static/debootstrap are missing: the aarch64 emulation is skipped (apt-get install qemu-user-static debootstrap)"; fi

# edgeprobe on emulated aarch64 (Debian bookworm root + Debian 13's qemu-aarch64, cached in ~/.cache/edgeprobe/arm64):
# the wheels-only check of deploy/resolve-arm64.sh for all six targets, --version, `edgeprobe run` on the demo
# config, and the deploy/arm64 suites whose golden checks feed aarch64 the frames recorded on x86_64 and report
# a decoder difference apart (deploy/arm64/smoke.sh says how). Minutes: not part of `make test`, which runs a
# reduced form where this left the emulated environment cached. The log is build/arm64-smoke/smoke.log.
arm64-smoke: install assets arm64-tools
	PYTHON=$(BIN)/python bash deploy/arm64/smoke.sh

# The reference ImageNet-C implementation (imagecorruptions 1.1.2) for the perturbation fidelity test and
# benchmark, in its own venv: it needs numpy<2-era APIs. Installed --no-deps so it does not pull the GUI
# opencv-python (libGL); the headless wheel serves it. About 30 s with a warm pip cache.
REF_VENV := .venv-ref
ref-venv: $(REF_VENV)/.installed-stamp

$(REF_VENV)/.installed-stamp:
	$(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install -q 'numpy==1.26.4' 'scipy==1.11.4' 'scikit-image==0.20.0' \
	  'Pillow==10.4.0' 'opencv-python-headless==4.10.0.84' 'setuptools<70'
	$(REF_VENV)/bin/python -m pip install -q --no-deps 'imagecorruptions==1.1.2'
	touch $@

assets: install
	$(BIN)/edgeprobe assets fetch >/dev/null

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/python -m pytest -q tests/test_quality.py -k mypy

check: lint test

# Every benchmark in its short form, one after the other (several minutes; not part of `make test`:
# figures come from full runs, e.g. `python benchmarks/overhead.py`, quoted in the README).
QUICK_BENCHMARKS := overhead monitoring perturbations ingest tflite_vs_onnx live_sources
bench: install broker assets ref-venv
	@set -e; for b in $(QUICK_BENCHMARKS); do echo "== benchmarks/$$b.py --quick"; \
	  $(BIN)/python benchmarks/$$b.py --quick; done

clean:
	rm -rf $(VENV) $(REF_VENV) $(GST_VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
