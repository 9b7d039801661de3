"""else-dse: exact event statistics, cost models and design-space exploration
for event-driven DNN inference (ELSE line deltas, temporal deltas, thresholds).

The pipeline, one module per stage::

    recording -> quantize -> count_events -> estimate -> search -> report
    (recording)  (recording)  (schemes, events) (hardware, cost) (search) (report)
"""

import os as _os

# The kernels' idle OpenMP threads sleep instead of spinning: they share the cores
# with dask workers and other processes (set OMP_WAIT_POLICY to choose otherwise).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .workload import GeometryError, Layer  # noqa: E402
from .recording import QuantizedRecording, Recording, RecordingError, open_recording
from .schemes import Conventional, Dense, LineDelta, Plan, Scheme, TemporalDelta
from .events import count_events, event_curve, layers_of
from .hardware import Hardware, HardwareError, load_template
from .cost import CostError, estimate
from . import search
from . import report  # plotting libraries load only when a report is written

__version__ = "0.1.0"

__all__ = [
    "GeometryError", "Layer",
    "QuantizedRecording", "Recording", "RecordingError", "open_recording",
    "Scheme", "Dense", "Conventional", "LineDelta", "TemporalDelta", "Plan",
    "count_events", "event_curve", "layers_of",
    "Hardware", "HardwareError", "load_template", "CostError", "estimate",
    "search", "report",
]
