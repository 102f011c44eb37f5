"""Subcommands; each module defines ``register(app)`` and is found automatically.

Keep heavy imports (onnxruntime, cv2, plotting) inside the command functions so
``edgeprobe --help`` stays fast on a small board.
"""
