"""Gated graph propagation over category nodes (SPEC section 2)."""
import torch
import torch.nn as nn


class GatedGraphPropagation(nn.Module):
    """GGNN update ``h <- (1-u) h + u g`` repeated ``num_steps`` times.

    With ``m = [A h ; A^T h]``: ``u = sigmoid(Wu m + Uu h)``,
    ``r = sigmoid(Wr m + Ur h)``, ``g = tanh(Wg m + Ug (r * h))``.

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

    def step(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """One propagation step on node features h (B, C, D)."""
        adjacency = adjacency.to(h.dtype)
        messages = torch.cat([
            torch.matmul(adjacency, h),
            torch.matmul(adjacency.T, h)
        ], dim=-1)
        update = torch.sigmoid(
            self.update_msg(messages) + self.update_node(h))
        reset = torch.sigmoid(self.reset_msg(messages) + self.reset_node(h))
        candidate = torch.tanh(
            self.candidate_msg(messages) + self.candidate_node(reset * h))
        return (1 - update) * h + update * candidate

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor
                ) -> torch.Tensor:
        for _ in range(self.num_steps):
            h = self.step(h, adjacency)
        return h
