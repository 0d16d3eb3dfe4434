"""Candidate operations of the recurrent cell (Sec. 4.2): activation functions, DARTS's names (``RNN_OPS``, K = 5).

:func:`activation` also serves the activations of rnn-family spaces declared with
:func:`egs.arch.space.declare_space`.
"""
from __future__ import annotations

from typing import Callable

import torch

from egs.arch.space import RNN_OPS, SearchSpace, check_op, get_space


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


_RNN_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": torch.zeros_like,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": _identity,
}
assert tuple(_RNN_ACTIVATIONS) == RNN_OPS


def rnn_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function of recurrent-space op ``name`` ("none" maps to zeros)."""
    return _RNN_ACTIVATIONS[check_op(name, "rnn")]


def activation(space: SearchSpace | str, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation of op ``name`` of rnn-family ``space``: a declared one, else built in."""
    space = get_space(space)
    check_op(name, space)
    return space.activations[name] if name in space.activations else rnn_activation(name)
