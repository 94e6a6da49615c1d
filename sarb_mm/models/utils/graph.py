"""Gated graph propagation over category nodes (docs/method.md)."""
from typing import Sequence, Tuple

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
        return (torch.cat([m.weight
                           for m in msg]), torch.cat([m.bias for m in msg]),
                torch.cat([m.weight
                           for m in node]), torch.cat([m.bias for m in node]))

    def _gates(self, h: torch.Tensor, msg: torch.Tensor,
               node: torch.Tensor) -> torch.Tensor:
        """Finish a step from the message / node products."""
        msg_update, msg_reset, msg_candidate = msg.chunk(3, dim=-1)
        node_update, node_reset = node.chunk(2, dim=-1)
        update = torch.sigmoid(msg_update + node_update)
        reset = torch.sigmoid(msg_reset + node_reset)
        candidate = torch.tanh(msg_candidate + self.candidate_node(reset * h))
        return (1 - update) * h + update * candidate

    def _products(self, h: torch.Tensor, adjacency: torch.Tensor,
                  fused: Tuple[torch.Tensor, ...]):
        msg_weight, msg_bias, node_weight, node_bias = fused
        messages = torch.cat(
            [torch.matmul(adjacency, h),
             torch.matmul(adjacency.T, h)], dim=-1)
        return (F.linear(messages, msg_weight,
                         msg_bias), F.linear(h, node_weight, node_bias))

    def step(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """One propagation step on node features h (B, C, D)."""
        adjacency = adjacency.to(h.dtype)
        return self._gates(h, *self._products(h, adjacency, self._fused()))

    def forward(
        self,
        h: torch.Tensor,
        adjacency: torch.Tensor,
        variants: Sequence[Tuple[torch.Tensor, torch.Tensor]] = ()
    ) -> torch.Tensor:
        """Propagate h (B, C, D) and, optionally, variants of it.

        Args:
            h (Tensor): Node features (B, C, D).
            adjacency (Tensor): A (C, C).
            variants: ``(delta, mask)`` pairs describing ``h + delta`` where
                ``delta`` (B, C, D) is zero outside the bool ``mask`` (B, C)
                (the blended copies of SARB). Their first step reuses h's
                products, since ``W [A h'; A^T h'] = W [A h; A^T h] +
                A (delta W1^T) + A^T (delta W2^T)`` and only the masked rows
                of delta need a product.

        Returns:
            Tensor: ``(1 + len(variants)) * B`` propagated node features,
            h's first.
        """
        adjacency = adjacency.to(h.dtype)
        fused = self._fused()
        msg, node = self._products(h, adjacency, fused)
        if variants:
            msg_weight, _, node_weight, _ = fused
            width = h.shape[-1]
            all_h, all_msg, all_node = [h], [msg], [node]
            for delta, mask in variants:
                to_neighbours = masked_rows_linear(delta, mask,
                                                   msg_weight[:, :width])
                from_neighbours = masked_rows_linear(delta, mask,
                                                     msg_weight[:, width:])
                all_h.append(h + delta)
                all_msg.append(msg + torch.matmul(adjacency, to_neighbours) +
                               torch.matmul(adjacency.T, from_neighbours))
                all_node.append(node +
                                masked_rows_linear(delta, mask, node_weight))
            h, msg, node = (torch.cat(t) for t in (all_h, all_msg, all_node))
        h = self._gates(h, msg, node)
        for _ in range(self.num_steps - 1):
            h = self._gates(h, *self._products(h, adjacency, fused))
        return h


def masked_rows_linear(x: torch.Tensor, mask: torch.Tensor,
                       weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` for an x that is zero outside ``mask``.

    Args:
        x (Tensor): (B, C, D_in), zero where ``mask`` is False.
        mask (Tensor): Bool (B, C).
        weight (Tensor): (D_out, D_in).

    Returns:
        Tensor: (B, C, D_out); only the masked rows are multiplied.
    """
    out = x.new_zeros(x.shape[:-1] + (weight.shape[0], ))
    return out.index_put(
        torch.nonzero(mask, as_tuple=True), x[mask] @ weight.T)
