"""edgeprobe: validate vision models on the boards they run on.

The installed package maps the top-level folders of the repository under one
namespace: ``edgeprobe.harness`` (pure validation logic), ``edgeprobe.agent``
(the on-device process) and ``edgeprobe.collector`` (the central side).
"""

__version__ = "0.1.0"
