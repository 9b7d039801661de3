"""Tasks: decode the shipped networks' outputs and measure task fidelity.

A replay (:func:`else_dse.record.replay`) gives each output tensor of a network
under a suppression plan and in the float run; :func:`fidelity` says what the
difference means: the relative L2 error of every output tensor, for any model.

>>> from else_dse.tasks import fidelity          # doctest: +SKIP
>>> fidelity(model, rep.outputs, rep.reference)   # doctest: +SKIP
"""

from .fidelity import fidelity
from .tensors import rel_l2

__all__ = ["fidelity", "rel_l2"]
