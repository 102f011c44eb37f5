"""Run the reference ``imagecorruptions`` 1.1.2 inside its own venv (``make ref-venv`` -> .venv-ref).

It needs numpy < 2 era APIs and a GUI OpenCV, so it never shares a process
with edgeprobe: the benchmark and the fidelity test call this script with
``.venv-ref/bin/python`` and exchange .npz/.json files.

One compatibility patch: scikit-image >= 0.20 (the first with Python 3.11
wheels) dropped ``gaussian(..., multichannel=True)``; it is mapped to
``channel_axis=-1``, which computes the same thing.

    python imagecorruptions_ref.py run SPEC.json
        SPEC: {"images": in.npz, "jobs": [[key, name, severity, seed], ...], "out": out.npz}
    python imagecorruptions_ref.py time SPEC.json
        SPEC: {"image": in.npy, "names": [...], "severity": 3, "repeats": 5, "out": times.json}

Images are RGB uint8, as the reference expects.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from typing import Any

import numpy as np


def _load() -> Any:
    warnings.simplefilter("ignore")
    import imagecorruptions.corruptions as corruptions
    from skimage.filters import gaussian as sk_gaussian

    def gaussian(image: Any, sigma: Any = 1, multichannel: Any = None, **kw: Any) -> Any:
        if multichannel:
            kw["channel_axis"] = -1
        return sk_gaussian(image, sigma=sigma, **kw)

    corruptions.gaussian = gaussian
    import imagecorruptions

    return imagecorruptions


def main(argv: list[str]) -> int:
    mode, spec_path = argv[1], argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    ic = _load()
    if mode == "run":
        images = dict(np.load(spec["images"]))
        outputs = {}
        for i, (key, name, severity, seed) in enumerate(spec["jobs"]):
            np.random.seed(int(seed))
            outputs[f"out{i}"] = ic.corrupt(images[key], corruption_name=name, severity=int(severity))
        np.savez(spec["out"], **outputs)
    elif mode == "time":
        image = np.load(spec["image"])
        result = {}
        for name in spec["names"]:
            times = []
            for r in range(int(spec["repeats"])):
                np.random.seed(r)
                t0 = time.perf_counter_ns()
                ic.corrupt(image, corruption_name=name, severity=int(spec["severity"]))
                times.append((time.perf_counter_ns() - t0) / 1e6)
            result[name] = times
        with open(spec["out"], "w") as f:
            json.dump(result, f)
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
