# edgeprobe collector: MQTT subscriber -> SQLite, with Prometheus metrics.
# Expected size (estimate, not measured): about 400 MB (python slim plus the core install,
# which includes opencv and onnxruntime because the collector ships in the same distribution).
FROM python:3.11-slim-bookworm AS build
# Every dependency installs from a wheel on aarch64 and x86_64 (`make arm64-wheels` checks it): no compiler.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY edgeprobe ./edgeprobe
COPY harness ./harness
COPY agent ./agent
COPY collector ./collector
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[collector]'

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'edgeprobe[collector]' && rm -rf /wheels \
 && useradd --system --uid 10002 --home-dir /data --create-home collector
USER collector
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9108
# Credentials come from the environment (EDGEPROBE_MQTT_USERNAME / EDGEPROBE_MQTT_PASSWORD), set by compose.
ENTRYPOINT ["edgeprobe", "collect", "--db", "/data/fleet.db"]
