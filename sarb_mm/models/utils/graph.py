"""Gated graph propagation over category nodes (SPEC section 2)."""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class GatedGraphPropagation(nn.Module):
    """GGNN update ``h <- (1-u) h + u g`` repeated ``num_steps`` times.

    With ``m = [A h ; A^T h]``: ``u = sigmoid(Wu m + Uu h)``,
    ``r = sigmoid(Wr m + Ur h)``, ``g = tanh(Wg m + Ug (r * h))``. The
    parameters are stored per gate; the three message maps and the two node
    maps that share an input run as one matrix product each.

    Args:
        channels (int): Node feature width D.
        num_steps (int): Propagation steps T. Defaults to 3.
    """

    def __init__(self, channels: int, num_steps: int = 3) -> None:
        super().__init__()
        self.num_steps = num_steps
        self.update_msg = nn.Linear(2 * channels, channels)
        self.update_node = nn.Linear(channels, channels)
        self.reset_msg = nn.Linear(2 * channels, channels)
        self.reset_node = nn.Linear(channels, channels)
        self.candidate_msg = nn.Linear(2 * channels, channels)
        self.candidate_node = nn.Linear(channels, channels)

    def _fused(self) -> Tuple[torch.Tensor, ...]:
        msg = (self.update_msg, self.reset_msg, self.candidate_msg)
        node = (self.update_node, self.reset_node)
        return (torch.cat([m.weight for m in msg]),
                torch.cat([m.bias for m in msg]),
                torch.cat([m.weight for m in node]),
                torch.cat([m.bias for m in node]))

    def _step(self, h: torch.Tensor, adjacency: torch.Tensor,
              fused: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        msg_weight, msg_bias, node_weight, node_bias = fused
        adjacency = adjacency.to(h.dtype)
        messages = torch.cat([
            torch.matmul(adjacency, h),
            torch.matmul(adjacency.T, h)
        ], dim=-1)
        msg_update, msg_reset, msg_candidate = F.linear(
            messages, msg_weight, msg_bias).chunk(3, dim=-1)
        node_update, node_reset = F.linear(h, node_weight,
                                           node_bias).chunk(2, dim=-1)
        update = torch.sigmoid(msg_update + node_update)
        reset = torch.sigmoid(msg_reset + node_reset)
        candidate = torch.tanh(msg_candidate +
                               self.candidate_node(reset * h))
        return (1 - update) * h + update * candidate

    def step(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """One propagation step on node features h (B, C, D)."""
        return self._step(h, adjacency, self._fused())

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor
                ) -> torch.Tensor:
        fused = self._fused()
        for _ in range(self.num_steps):
            h = self._step(h, adjacency, fused)
        return h
