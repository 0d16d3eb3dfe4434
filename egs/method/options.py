"""The method's named choices (light: no torch), shared by its modules and the settings that pick them."""
from __future__ import annotations

DERIVATION_RULES = ("node", "select", "edge")  # egs.method.derivation: the authors' per-node rule, the paper's, per edge
EFFECTIVENESS = ("softmax", "relu")  # how alpha becomes the effectiveness credit h (egs.method.supernet)
