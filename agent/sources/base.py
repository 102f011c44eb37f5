"""What every frame source yields."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    ``t_capture_ns`` is ``perf_counter_ns()`` when the frame arrived (not when
    the model got to it), so end-to-end latency includes any queueing. A
    source opened with ``reuse_buffer`` decodes the next frame into the same
    ``image``: copy what must outlive the frame.
    """

    image: np.ndarray  # BGR (or grey) uint8, HxW[xC]
    t_capture_ns: int
    index: int
    source_id: str
    #: time spent decoding this frame (ns), reported as the `decode` stage
    decode_ns: int = 0


class FrameSource(Protocol):
    source_id: str

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        """Facts for the birth message (kind, resolution, fps); no credentials."""
        ...
