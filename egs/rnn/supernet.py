"""The recurrent search supernet: EGS over DARTS's PTB cell (Sec. 4.2), sparse sampled cells.

:class:`RNNSupernet` adds to :class:`egs.method.supernet.EGSSupernet` the language model of :mod:`egs.rnn.model`;
:func:`efficiency_credit` is the efficiency credit l of Eq. 5 for the recurrent ops.
"""
from __future__ import annotations

from typing import Mapping

import torch

from egs.arch.space import ZERO, SearchSpace, get_space
from egs.conv.credits import credit_from_cost
from egs.core.checks import check_int
from egs.core.errors import EGSError
from egs.method.supernet import EGSSupernet, active_ops
from egs.rnn.model import RNNModel


def op_macs(space: SearchSpace | str, nhid: int) -> torch.Tensor:
    """Forward multiply-adds (float64, (K,)) of each op of rnn-family ``space`` alone on an edge (i, j) of an
    ``nhid``-wide cell, per batch row and time step: the edge's share of node j's matmul (s_i W_j, nhid x 2 nhid,
    2 nhid^2) plus one per element for each elementwise op: the gate's sigmoid, the activation (none for
    identity; a declared activation counts one), the highway s + c (f(h) - s) (three) and the code's scale.
    "none" costs 0: an edge without an active op is not computed (:class:`egs.rnn.model.RNNCell`)."""
    space, nhid = get_space(space), check_int(nhid, "nhid")
    return torch.tensor([0.0 if name == ZERO else 2.0 * nhid * nhid + nhid * (5 + (name != "identity"))
                         for name in space.ops], dtype=torch.float64)


def efficiency_credit(space: SearchSpace | str = "rnn", nhid: int = 300, beta: float = 1.0) -> torch.Tensor:
    """The efficiency credit l (K,) of Eq. 5 for the ops of rnn-family ``space`` at hidden size ``nhid``:
    ``softmax(-beta * c / max c)`` of their multiply-adds c (:func:`op_macs`), the rule of the conv credit
    (:func:`egs.conv.credits.credit_from_cost`); the paper reads efficiency as "search time" (Sec. 3.2.2).

    Every activation of an edge pays the same matmul, so l is near-uniform over them (at nhid 300: 0.1488 each,
    identity 0.1491) and favours "none" (0.4045), which skips the edge. Timed at paper search size (batch 256,
    nhid 300, one edge-step forward + backward, 2 CPU cores) the same holds: relu and sigmoid cost 0.91-0.94 of
    tanh, identity 0.87-0.90, the matmul alone 0.68-0.70 (docs/settings.md, "rnn_search: lam")."""
    return credit_from_cost(op_macs(space, nhid), beta).float()


class RNNSupernet(EGSSupernet):
    """EGS search over the recurrent cell: logits ``alpha_normal`` (E = 36, K = 5), sparse sampled cells.

    Args: ``ntoken``, ``ninp``, ``nhid`` as :class:`RNNModel`; ``M``, ``lam``, ``tau``, ``effectiveness``
    as :class:`egs.method.supernet.EGSSupernet`; ``credit`` the efficiency credit; ``n_nodes`` and ``space`` the
    cell; ``dropout``, ``dropouth``, ``dropoutx``, ``dropouti``, ``dropoute``, ``batch_norm`` as DARTS's
    search model.

    ``p = lam * h + (1 - lam) * l`` (Eq. 5). The paper gives no resource cost for activations; the search
    (:mod:`egs.rnn.search`) passes the multiply-add credit of :func:`efficiency_credit` with the paper's lam = 0.5
    (``RNNSearchSettings``). Here lam = 1 by default and the efficiency credit l is uniform (1/5) unless
    ``credit`` ((E, 5) or (5,), rows summing to 1) is given. One code per edge is sampled per step (one
    batched sampler call) and shared by all time steps of the batch. Dropout defaults are DARTS's search
    settings (rnn/train_search.py: dropoute 0).
    """

    def __init__(self, ntoken: int, ninp: int, nhid: int, M: int = 4, lam: float = 1.0,
                 tau: float = 1.0, credit: torch.Tensor | None = None, n_nodes: int | None = None, *,
                 dropout: float = 0.75, dropouth: float = 0.25, dropoutx: float = 0.75,
                 dropouti: float = 0.2, dropoute: float = 0.0, batch_norm: bool = True,
                 space: SearchSpace | str = "rnn", effectiveness: str = "softmax") -> None:
        space = get_space(space)
        if space.family != "rnn":
            raise EGSError(f"RNNSupernet builds recurrent cells; space {space.name!r} is a {space.family} space.")
        super().__init__(space, n_nodes, M, lam, tau, None if credit is None else {"normal": credit}, effectiveness)
        self.net = RNNModel(ntoken, ninp, nhid, None, dropout=dropout, dropouth=dropouth, dropoutx=dropoutx,
                            dropouti=dropouti, dropoute=dropoute, batch_norm=batch_norm, n_nodes=self.n_nodes,
                            space=space)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """Zero initial hidden state (1, batch_size, nhid) of the search language model."""
        return self.net.init_hidden(batch_size)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, codes: Mapping[str, torch.Tensor] | None = None,
                generator: torch.Generator | None = None, return_logits: bool = False,
                check_tokens: bool = True, return_h: bool = False) -> tuple[torch.Tensor, ...]:
        """Sparse forward pass (only the active activations run).

        Args:
            inputs, hidden, return_logits, check_tokens, return_h: as :meth:`RNNModel.forward` (token ids (T, B),
                hidden (1, B, nhid)).
            codes: ``{"normal": binary code (E, K)}``, e.g. from :meth:`sample` (None: sampled here).
            generator: the random generator used when the codes are sampled here.
        """
        codes = self.sample(generator) if codes is None else codes
        shape = tuple(self.alpha_normal.shape)
        code = codes.get("normal") if isinstance(codes, Mapping) else None
        if not isinstance(code, torch.Tensor) or tuple(code.shape) != shape:
            got = tuple(code.shape) if isinstance(code, torch.Tensor) else type(codes).__name__
            raise EGSError(f"codes must be {{'normal': tensor of shape {shape}}} (one code per edge), got {got}.")
        return self.net(inputs, hidden, weights=code, active=active_ops(code, self.space), return_logits=return_logits,
                        check_tokens=check_tokens, return_h=return_h)
