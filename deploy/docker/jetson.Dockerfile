# edgeprobe agent for NVIDIA Jetson (Orin family, JetPack 6 / L4T r36): ONNX Runtime with
# the CUDA and TensorRT execution providers. PyPI's onnxruntime-gpu has no aarch64 wheels;
# NVIDIA publishes JetPack builds on its Jetson AI Lab index: pass it as ORT_INDEX.
#   docker build -f deploy/docker/jetson.Dockerfile --build-arg ORT_INDEX=<jetson index url> -t edgeprobe-jetson .
#   docker run --runtime nvidia --device /dev/video0 -v /etc/edgeprobe/agent.yaml:/etc/edgeprobe/agent.yaml:ro \
#              -v /opt/edgeprobe/models:/opt/edgeprobe/models:ro -v edgeprobe-state:/var/lib/edgeprobe \
#              -v /tmp/argus_socket:/tmp/argus_socket edgeprobe-jetson
# (the argus socket lets nvarguscamerasrc reach the host's camera daemon for CSI cameras).
# In agent.yaml: model.providers: [TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider];
# edgeprobe refuses to start if a listed provider fails to load rather than measure the CPU.
# OpenCV is JetPack's own (GStreamer on, so CSI cameras and nvarguscamerasrc pipelines open), reached
# through a venv with --system-site-packages: PyPI's opencv-python-headless has no GStreamer and a pip
# numpy 2 would break JetPack's cv2, built for numpy 1.x (deploy/board-venv.sh keeps both).
# Expected size (estimate, not measured: no container engine or Jetson where this was written):
# 6-8 GB, nearly all of it the l4t-jetpack base (CUDA, cuDNN, TensorRT); edgeprobe adds ~250 MB.
ARG L4T_TAG=r36.4.0
FROM nvcr.io/nvidia/l4t-jetpack:${L4T_TAG}
ARG ORT_INDEX=""
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY edgeprobe /src/edgeprobe
COPY harness /src/harness
COPY agent /src/agent
COPY collector /src/collector
COPY deploy/board-venv.sh /src/deploy/board-venv.sh
# onnxruntime-gpu from NVIDIA's index replaces the CPU-only onnxruntime the core install pulls in.
RUN test -n "$ORT_INDEX" || { echo "pass --build-arg ORT_INDEX=<NVIDIA Jetson AI Lab index for your JetPack>"; exit 1; } \
 && sh /src/deploy/board-venv.sh /opt/edgeprobe/venv /src /usr/bin/python3 \
 && /opt/edgeprobe/venv/bin/pip uninstall -y onnxruntime \
 && /opt/edgeprobe/venv/bin/pip install --no-cache-dir -c /opt/edgeprobe/venv/system-constraints.txt \
      --extra-index-url "$ORT_INDEX" onnxruntime-gpu \
 && rm -rf /src \
 && useradd --system --uid 10001 --groups video --home-dir /var/lib/edgeprobe --create-home edgeprobe
ENV PATH=/opt/edgeprobe/venv/bin:$PATH EDGEPROBE_ASSETS=/opt/edgeprobe/models PYTHONUNBUFFERED=1 \
    EDGEPROBE_HEARTBEAT_FILE=/tmp/edgeprobe.heartbeat
VOLUME ["/var/lib/edgeprobe"]
USER edgeprobe
WORKDIR /var/lib/edgeprobe
# Heartbeat as in agent.Dockerfile; a first TensorRT engine build touches it too (it is start-up work).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["edgeprobe", "heartbeat", "--max-age", "30"]
ENTRYPOINT ["edgeprobe", "run", "-c", "/etc/edgeprobe/agent.yaml", "--spool", "/var/lib/edgeprobe/spool.db"]
