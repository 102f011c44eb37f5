"""Serve a real video's frames as HTTP multipart/x-mixed-replace MJPEG on 127.0.0.1.

Run as a subprocess so a test can kill it mid-stream:
``python mjpeg_server.py VIDEO PORT [--fps 25] [--auth user:pass] [--switch-size-after N]``.
Prints ``READY`` once listening.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("port", type=int)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--auth", default="")
    ap.add_argument("--switch-size-after", type=int, default=0)
    args = ap.parse_args()
    cap = cv2.VideoCapture(args.video)
    frames = []
    while len(frames) < 100:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
    small = [cv2.imencode(".jpg", cv2.resize(f, (384, 288)))[1].tobytes() for f in frames]
    expected = "Basic " + base64.b64encode(args.auth.encode()).decode() if args.auth else ""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            if expected and self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="cam"')
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            i, period, due = 0, 1.0 / args.fps, time.monotonic()
            try:
                while True:
                    pool = small if args.switch_size_after and i >= args.switch_size_after else jpegs
                    data = pool[i % len(pool)]
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                     + f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                    i += 1
                    due += period
                    time.sleep(max(0.0, due - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                return

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.allow_reuse_address = True
    print("READY", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
