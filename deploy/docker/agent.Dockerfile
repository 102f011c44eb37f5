# edgeprobe agent for arm64 boards (Raspberry Pi 4/5 on Raspberry Pi OS bookworm, other
# aarch64 boxes) and x86: ONNX Runtime (CPU) and LiteRT, both from manylinux wheels.
#   docker buildx build --platform linux/arm64 -f deploy/docker/agent.Dockerfile -t edgeprobe-agent .
#   docker run --device /dev/video0 -v /etc/edgeprobe/agent.yaml:/etc/edgeprobe/agent.yaml:ro \
#              -v /opt/edgeprobe/models:/opt/edgeprobe/models:ro \
#              -v edgeprobe-spool:/var/lib/edgeprobe edgeprobe-agent
# (model paths in agent.yaml as ${EDGEPROBE_ASSETS}/model.onnx resolve inside the models mount;
# deploy/compose.yaml has the same as its `agent` profile).
# Expected size (estimate, not measured: no container engine where this was written):
# about 450 MB for linux/arm64 (python slim ~125 MB, opencv-python-headless ~50 MB,
# onnxruntime ~15 MB, ai-edge-litert ~10 MB, numpy ~15 MB, the rest small).
# `make arm64-wheels` checks which dependencies have manylinux aarch64 / CPython 3.11 wheels.
FROM python:3.11-slim-bookworm AS build
# Every dependency installs from a wheel on aarch64 and x86_64 (`make arm64-wheels` checks it): no compiler.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY edgeprobe ./edgeprobe
COPY harness ./harness
COPY agent ./agent
COPY collector ./collector
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[tflite]'

FROM python:3.11-slim-bookworm
# No compilers, no build caches: only the wheels, installed once.
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'edgeprobe[tflite]' && rm -rf /wheels \
 && useradd --system --uid 10001 --gid video --home-dir /var/lib/edgeprobe --create-home edgeprobe
ENV EDGEPROBE_ASSETS=/opt/edgeprobe/models PYTHONUNBUFFERED=1 EDGEPROBE_HEARTBEAT_FILE=/tmp/edgeprobe.heartbeat
VOLUME ["/var/lib/edgeprobe"]
USER edgeprobe
WORKDIR /var/lib/edgeprobe
# The agent touches its heartbeat file every 5 s while its loop is alive, camera outages included
# (agent/sdnotify.py); `edgeprobe heartbeat` reads only the file's age. Unhealthy after ~2 minutes
# without a beat: a hung loop, not a camera that is down (that is reported over MQTT instead).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["edgeprobe", "heartbeat", "--max-age", "30"]
# The config holds the broker credentials: mount it read-only, never bake it in.
ENTRYPOINT ["edgeprobe", "run", "-c", "/etc/edgeprobe/agent.yaml", "--spool", "/var/lib/edgeprobe/spool.db"]
