"""else-dse: exact event statistics, cost models and design-space exploration
for event-driven DNN inference (ELSE line deltas, temporal deltas, thresholds).

The pipeline (one module per stage)::

    recording -> quantize -> count_events -> estimate -> search -> report
"""

from .workload import GeometryError, Layer
from .recording import QuantizedRecording, Recording, RecordingError, open_recording
from .hardware import Hardware, HardwareError, load_template
from .cost import CostError, estimate
from .schemes import Conventional, Dense, LineDelta, Plan, TemporalDelta  # kernel helper
from .events import count_events, event_curve, layers_of  # kernel helper
from . import report  # noqa: E402  (else_dse.report.write; plotting imported lazily)
from . import search  # noqa: E402  (else_dse.search.run; search helper)

__version__ = "0.1.0"

__all__ = [
    "GeometryError",
    "Layer",
    "QuantizedRecording",
    "Recording",
    "RecordingError",
    "open_recording",
    "Dense", "Conventional", "LineDelta", "TemporalDelta", "Plan",  # kernel helper
    "count_events", "event_curve", "layers_of",  # kernel helper
    "Hardware", "HardwareError", "load_template", "CostError", "estimate",  # cost helper
]
