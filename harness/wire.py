"""What any value on the wire may be: int64 bounds, size caps and the constrained scalar types.

Shared by the envelope (harness/schema.py) and the bodies (harness/bodies.py), so a cap is set once and
holds for every message kind.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

#: SQLite's INTEGER (and PostgreSQL's BIGINT) are 64-bit signed: a larger JSON integer would make the
#: store raise (OverflowError) instead of storing the message, so the schema refuses it up front.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: default cap on one message's size; the largest legitimate message (a robustness window carrying four
#: exemplars at their 64 KiB cap each) is about 270 KiB, so 256 KiB would refuse real traffic
DEFAULT_MAX_BYTES = 512 * 1024
#: containers inside a body (a real one nests about 5 deep): past this a payload is refused before a
#: recursive decoder or encoder can overflow the stack
MAX_DEPTH = 32
#: any string inside a body's free-form parts (typed fields carry their own, tighter caps)
MAX_STRING = 64 * 1024

Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
#: the collector's idempotency key, in the one spelling ``str(uuid.uuid4())`` gives: refused, not
#: normalised, so an id is the same string at the agent, the broker, the collector and in queries
MsgId = Annotated[str, msgspec.Meta(
    pattern="^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
Identifier = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]
Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
#: names (stages, perturbations, flags, modes) and free text (messages, reasons) a device sends
Name = Annotated[str, msgspec.Meta(max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=4096)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
