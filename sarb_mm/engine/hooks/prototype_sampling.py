"""Bounded-memory sampling of known positives for the prototype pass.

Every (image, class) pair gets a pseudo-random 64-bit key, a hash of
(seed, epoch, class, sample index); a class keeps the ``k`` pairs with the
smallest keys (a bottom-k sample: a uniform sample without replacement).
The kept set depends on the pairs seen only, not on their order, batch
size, worker count or rank, and the per-rank bottom-k sets merge into the
global one by taking the bottom-k of their union.
"""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather, all_reduce, get_rank
from torch.utils.data import DataLoader, Sampler

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_GENERATOR_SALT = np.uint64(0x5EED5EED5EED5EED)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 (so no collisions)."""
    with np.errstate(over='ignore'):
        z = (z ^ (z >> np.uint64(30))) * _MUL1
        z = (z ^ (z >> np.uint64(27))) * _MUL2
        return z ^ (z >> np.uint64(31))


def _class_states(seed: int, epoch: int, classes) -> np.ndarray:
    with np.errstate(over='ignore'):
        state = _mix(np.array([seed], dtype=np.uint64) + _GAMMA)
        state = _mix(state + np.uint64(epoch) + _GAMMA)
        classes = np.asarray(classes, dtype=np.int64).astype(np.uint64)
        return _mix(state + (classes + np.uint64(1)) * _GAMMA)


def pair_keys(seed: int, epoch: int, sample_idx, classes) -> np.ndarray:
    """Sampling key of each (sample index, class) pair, as int64.

    Within a class the map from sample index to key is injective (a
    bijection applied to ``state + sample_idx``), so distinct images never
    tie and a repeated image gets the same key again (so it is found
    and counted once).
    """
    states = _class_states(seed, epoch, classes)
    sample_idx = np.asarray(sample_idx, dtype=np.int64).astype(np.uint64)
    with np.errstate(over='ignore'):
        return _mix(states + sample_idx).view(np.int64)


def class_seed(seed: int, epoch: int, cls: int) -> int:
    """Seed of the K-means generator of one class (63 bits)."""
    state = _class_states(seed, epoch, [cls]) ^ _GENERATOR_SALT
    return int(_mix(state)[0] >> np.uint64(1))


def _sort_by(primary: torch.Tensor, secondary: torch.Tensor) -> torch.Tensor:
    """Indices that sort by ``primary``, then ``secondary``."""
    order = torch.argsort(secondary, stable=True)
    return order[torch.argsort(primary[order], stable=True)]


def select_bottom_k(keys: torch.Tensor, sample_idx: torch.Tensor,
                    k: int) -> torch.Tensor:
    """The ``k`` distinct pairs of one class with the smallest keys.

    Args:
        keys (Tensor): (N, ) int64 keys of candidates.
        sample_idx (Tensor): (N, ) int64 sample indices, -1 for an empty
            slot. Repeats of a sample count once (the first one is used).
        k (int): Sample size.

    Returns:
        Tensor: Positions in ``keys`` of at most ``k`` candidates, ordered
        by sample index (the order the points are clustered in).
    """
    valid = torch.nonzero(sample_idx >= 0).flatten()
    order = valid[_sort_by(keys[valid], sample_idx[valid])]
    key, idx = keys[order], sample_idx[order]
    first = torch.ones_like(idx, dtype=torch.bool)
    first[1:] = (key[1:] != key[:-1]) | (idx[1:] != idx[:-1])
    chosen = order[first][:k]
    return chosen[torch.argsort(sample_idx[chosen], stable=True)]


class BottomKPositives:
    """Streaming bottom-k sample of the known positives of every class.

    Memory is fixed by the classes, not the images: ``features`` is one
    (C, k, D) buffer plus (C, k) int64 keys and sample indices. The
    features are stored in the dtype the model produced them in (float32
    for float32 models, so the capped prototypes differ from the uncapped
    ones only by which points are kept, never by rounding; at C x k x D x 4
    bytes the cap, not the dtype, is what bounds the memory). The buffer
    is allocated empty: the OS commits the pages of a large allocation
    only as points are written, so classes short of k cost less.

    Args:
        num_classes (int): Number of classes C.
        k (int): Points kept per class at most.
        dim (int): Feature size D.
        seed (int): Seed of the sampling keys.
        epoch (int): Epoch of the keys (a new sample each pass).
    """

    def __init__(self, num_classes: int, k: int, dim: int, seed: int,
                 epoch: int) -> None:
        self.num_classes, self.k, self.dim = num_classes, k, dim
        self.seed, self.epoch = seed, epoch
        shape = (num_classes, k)
        self.keys = torch.zeros(shape, dtype=torch.long)
        self.sample_idx = torch.full(shape, -1, dtype=torch.long)
        self.counts = torch.zeros(num_classes, dtype=torch.long)
        # Largest kept key of a full class and its slot.
        self.worst = torch.zeros(num_classes, dtype=torch.long)
        self.worst_slot = torch.zeros(num_classes, dtype=torch.long)
        self.seen = torch.zeros(num_classes, dtype=torch.long)
        self.images = 0
        self.features = None

    def add(self, sample_idx: torch.Tensor, classes: torch.Tensor,
            features: torch.Tensor) -> None:
        """Offer the positives ``(sample_idx[i], classes[i])``.

        Args:
            sample_idx (Tensor): (m, ) sample index of each positive.
            classes (Tensor): (m, ) its class.
            features (Tensor): (m, D) its category feature, on any device;
                only the rows that enter the sample are copied.
        """
        sample_idx = torch.as_tensor(sample_idx).long().cpu()
        classes = torch.as_tensor(classes).long().cpu()
        if self.features is None:
            # The model's dtype; torch.empty commits no page until used.
            self.features = torch.empty((self.num_classes, self.k, self.dim),
                                        dtype=features.dtype)
        if classes.numel() == 0:
            return
        self.seen += torch.bincount(classes, minlength=self.num_classes)
        keys = torch.from_numpy(
            pair_keys(self.seed, self.epoch, sample_idx.numpy(),
                      classes.numpy()))
        # Drop what cannot enter a full class before copying any feature.
        full = self.counts[classes] == self.k
        pos = torch.nonzero(~full | (keys < self.worst[classes])).flatten()
        if pos.numel() == 0:
            return
        rows = features[pos.to(features.device)].to('cpu', self.features.dtype)
        keys, sample_idx, classes = keys[pos], sample_idx[pos], classes[pos]
        # Round j offers every class its j-th smallest new key: at most one
        # write per class per round, so the rounds vectorise over classes.
        order = _sort_by(classes, keys)
        starts = torch.ones_like(order, dtype=torch.bool)
        starts[1:] = classes[order][1:] != classes[order][:-1]
        position = torch.arange(order.numel())
        run_start = torch.where(starts, position, 0).cummax(0).values
        rank = torch.empty_like(order)
        rank[order] = position - run_start
        for j in range(int(rank.max()) + 1):
            self._insert(
                torch.nonzero(rank == j).flatten(), keys, sample_idx, classes,
                rows)

    def _insert(self, sel, keys, sample_idx, classes, rows) -> None:
        cls, key, idx = classes[sel], keys[sel], sample_idx[sel]
        count = self.counts[cls]
        # A repeated image (padded sampler) already kept is not re-added.
        repeat = (self.sample_idx[cls] == idx[:, None]).any(1)
        room = count < self.k
        take = ~repeat & (room | (key < self.worst[cls]))
        sel, cls, key, idx, room = (
            t[take] for t in (sel, cls, key, idx, room))
        slot = torch.where(room, count[take], self.worst_slot[cls])
        self.keys[cls, slot] = key
        self.sample_idx[cls, slot] = idx
        self.features[cls, slot] = rows[sel]
        self.counts[cls] += room.long()
        full = cls[self.counts[cls] == self.k]
        if full.numel():
            self.worst[full], self.worst_slot[full] = self.keys[full].max(1)

    def feature_bytes(self) -> Tuple[int, int]:
        """Bytes of the kept features and of their (C, k, D) buffer."""
        if self.features is None:
            return 0, 0
        row = self.dim * self.features.element_size()
        return int(self.counts.sum()) * row, self.features.numel() * row // (
            self.dim or 1)

    @torch.no_grad()
    def merged_class(
            self, cls: int,
            device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        """The global sample of class ``cls`` over all ranks, on every rank.

        Collective: every rank must call it for the same classes in the
        same order. The transient memory is (world_size, 2, k) int64 keys
        and one (k, D) float32 tensor: the rows each rank contributes are
        written at their final positions in a zero tensor and summed, so no
        rank receives more than the class's sample.

        Returns:
            tuple[Tensor, Tensor]: (n, D) float32 points on ``device``,
            ordered by sample index, and their (n, ) sample indices (CPU).
        """
        local = torch.stack([self.keys[cls], self.sample_idx[cls]])
        parts = [part.cpu() for part in all_gather(local.to(device))]
        keys = torch.cat([part[0] for part in parts])
        sample_idx = torch.cat([part[1] for part in parts])
        chosen = select_bottom_k(keys, sample_idx, self.k)
        points = torch.zeros(len(chosen), self.dim, device=device)
        mine = torch.nonzero(chosen // self.k == get_rank()).flatten()
        if mine.numel():
            slots = chosen[mine] % self.k
            points[mine.to(device)] = self.features[cls, slots].to(
                device, torch.float32)
        all_reduce(points)
        # -0.0 + 0.0 is +0.0: the same bits with one rank as with several.
        return points.add_(0.0), sample_idx[chosen]


def pass_indices(num_images: int, max_images, seed: int,
                 epoch: int) -> np.ndarray:
    """Sorted images of one pass: all, or a seeded subset of
    ``max_images`` (the same for any world size)."""
    if max_images is None or max_images >= num_images:
        return np.arange(num_images)
    rng = np.random.default_rng([seed, epoch, 0x9A55])
    return np.sort(rng.choice(num_images, max_images, replace=False))


class ShardSampler(Sampler):
    """This rank's share of ``indices``, padded as ``DistributedSampler``
    pads (repeating the first indices), in order, nothing dropped."""

    def __init__(self, indices: Sequence[int], rank: int,
                 world_size: int) -> None:
        indices = [int(i) for i in indices]
        total = math.ceil(len(indices) / world_size) * world_size
        padded = (indices * math.ceil(total / max(len(indices), 1)))[:total]
        self.indices = padded[rank::world_size]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def pass_loader(loader: DataLoader, indices: Sequence[int], rank: int,
                world_size: int) -> DataLoader:
    """A loader over ``indices`` of ``loader``'s dataset (its batch size,
    workers and collate function; no shuffling, no dropped batch)."""
    batch_size = loader.batch_size or getattr(loader.batch_sampler,
                                              'batch_size', 1)
    return DataLoader(
        loader.dataset,
        batch_size=batch_size,
        sampler=ShardSampler(indices, rank, world_size),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        worker_init_fn=loader.worker_init_fn,
        drop_last=False)


def pass_report(epoch: int, cap: Optional[int], subset: Optional[tuple],
                images: int, seen: torch.Tensor, kept: torch.Tensor,
                times: torch.Tensor, memory: Sequence[int]) -> List[str]:
    """The log lines of a prototype pass.

    Args:
        epoch (int): Epoch of the pass.
        cap (int, optional): ``max_points_per_class``.
        subset (tuple, optional): (images in the pass, dataset size), or
            None when the pass ran over the training loader.
        images (int): Images processed on all ranks (sampler repeats
            included).
        seen (Tensor): (C, ) known positives seen per class, all ranks.
        kept (Tensor): (C, ) known positives clustered per class.
        times (Tensor): (C, ) K-means seconds per class.
        memory (Sequence[int]): Bytes of the kept features and of their
            buffer, the largest rank's.
    """
    clustered = kept > 0
    num_kept = 'known positives' if cap is None else \
        f'kept known positives (at most {cap} per class)'
    scope = 'the training loader' if subset is None else \
        f'{subset[0]} of {subset[1]} training images'
    spent = times[clustered] if bool(clustered.any()) else times[:1] * 0
    mib = 2.0**20
    return [
        f'Epoch {epoch}: prototypes of {int(clustered.sum())}/{len(kept)} '
        f'classes from {int(kept.sum())} {num_kept}.',
        f'Prototype pass of epoch {epoch} over {scope}: {images} images '
        'processed on all ranks (sampler repeats included), '
        f'{int(seen.sum())} known positives seen; kept per class '
        f'min/median/max {int(kept.min())}/{int(kept.median())}/'
        f'{int(kept.max())}; K-means per class min/median/max '
        f'{float(spent.min()):.3f}/{float(spent.median()):.3f}/'
        f'{float(spent.max()):.3f} s, total {float(times.sum()):.2f} s; '
        f'kept features {memory[0] / mib:.1f} MiB in a '
        f'{memory[1] / mib:.1f} MiB buffer (per rank, at most).'
    ]
