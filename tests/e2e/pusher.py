"""A stand-in agent process for fault tests: the real Messenger, Spool and Publisher, no model.

    python -m tests.e2e.pusher SPOOL PORT COUNT RATE [MAX_ROWS]

Spools COUNT event messages at RATE per second (COUNT 0: only drain what the
spool holds), then waits until everything is acknowledged and exits.
"""

from __future__ import annotations

import sys
import time

from edgeprobe.agent.messages import Messenger
from edgeprobe.agent.publisher import Publisher
from edgeprobe.agent.spool import Spool


def main() -> int:
    spool_path, port, n, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    spool = Spool(spool_path, max_rows=int(sys.argv[5]) if len(sys.argv) > 5 else 100_000)
    messenger = Messenger(spool, "cam-a", "f", "a" * 64, "b" * 64)
    pub = Publisher(spool, "127.0.0.1", port, client_id="pusher-cam-a")
    messenger.on_put = pub.wake
    pub.start()
    t0 = time.monotonic()
    for i in range(n):
        messenger.send("event", {"type": "tick", "message": str(i)})
        print(i, flush=True)
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
    ok = pub.flush(60)
    pub.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
