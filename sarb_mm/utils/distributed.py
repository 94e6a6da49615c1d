"""Collective helpers shared by the heads and hooks."""
import torch
from mmengine.dist import all_gather


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's (m_r, ...) tensor on every rank, in rank
    order (m_r may differ between ranks); the tensor itself when not
    distributed."""
    count = torch.tensor([rows.shape[0]], device=rows.device)
    counts = [int(c) for c in all_gather(count)]
    padded = rows.new_zeros((max(counts), ) + tuple(rows.shape[1:]))
    padded[:rows.shape[0]] = rows
    parts = all_gather(padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts)])
