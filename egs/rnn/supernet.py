"""The recurrent search supernet: EGS over DARTS's PTB cell (Sec. 4.2), sparse sampled cells.

:class:`RNNSupernet` adds to :class:`egs.method.supernet.EGSSupernet` the language model of :mod:`egs.rnn.model`.
"""
from __future__ import annotations

from typing import Mapping

import torch

from egs.arch.space import SearchSpace, get_space
from egs.core.errors import EGSError
from egs.method.supernet import EGSSupernet, active_ops
from egs.rnn.model import RNNModel


class RNNSupernet(EGSSupernet):
    """EGS search over the recurrent cell: logits ``alpha_normal`` (E = 36, K = 5), sparse sampled cells.

    Args: ``ntoken``, ``ninp``, ``nhid`` as :class:`RNNModel`; ``M``, ``lam``, ``tau``, ``effectiveness``
    as :class:`egs.method.supernet.EGSSupernet`; ``credit`` the efficiency credit; ``n_nodes`` and ``space`` the
    cell; ``dropout``, ``dropouth``, ``dropoutx``, ``dropouti``, ``dropoute``, ``batch_norm`` as DARTS's
    search model.


    ``p = lam * h + (1 - lam) * l`` (Eq. 5). Decision: the paper gives no resource cost for
    activations, so for the recurrent space lam = 1 by default and the efficiency credit l is uniform
    (1/5) unless ``credit`` ((E, 5) or (5,), rows summing to 1) is given. One code per edge is
    sampled per step (one batched sampler call) and shared by all time steps of the batch. Dropout
    defaults are DARTS's search settings (rnn/train_search.py: dropoute 0).
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
                check_tokens: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse forward pass (only the active activations run).

        Args:
            inputs, hidden, return_logits, check_tokens: as :meth:`RNNModel.forward` (token ids (T, B), hidden
                (1, B, nhid)).
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
                        check_tokens=check_tokens)
