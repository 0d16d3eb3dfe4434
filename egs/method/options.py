"""The method's named choices (light: no torch), shared by its modules and the settings that pick them."""
from __future__ import annotations

# egs.method.derivation: the authors' per-node rule, the paper's text, per edge, one op per edge (NAS-Bench-201, DARTS)
DERIVATION_RULES = ("node", "select", "edge", "argmax")
EFFECTIVENESS = ("softmax", "relu")  # how alpha becomes the effectiveness credit h (egs.method.supernet)
