"""Keeps SARB's data-derived state up to date during training."""
import time
from typing import Optional, Tuple

import torch
from mmengine.dist import all_reduce, broadcast, get_dist_info, is_main_process
from mmengine.utils import ProgressBar
from mmpretrain.registry import HOOKS
from torch.utils.data import DataLoader

from sarb_mm.models.utils import kmeans
from sarb_mm.utils.distributed import gather_rows
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.validation import check_int
from .label_graph_hook import LabelGraphHook
from .partial_label_hook import unwrap_model
from .prototype_sampling import (BottomKPositives, class_seed, pass_indices,
                                 pass_loader, pass_report)


@HOOKS.register_module()
class PrototypeHook(LabelGraphHook):
    """Co-occurrence, prototypes and training progress for ``SARBHead`` and
    ``HSTHead``.

    - Before training: the co-occurrence matrix from the training partial
      labels (the same on every rank, since every rank holds the matrix),
      and a step pre-hook on the optimizer that drops the gradients of the
      head's idle parameters (alpha / beta before their branch runs): the
      published optimizer skips gradient-less parameters, so weight decay
      and momentum must not move them (see ``SARBHead.idle_parameters``).
    - Before the epochs ``start + k * interval``, where start is the head's
      ``prototype_start_epoch`` (SARB's ``blend_start_epoch``, HST's
      ``pseudo_label_epoch``), and any later
      epoch whose model has no prototypes, e.g. after loading an old
      checkpoint): one no-grad pass in eval mode over the training loader,
      K-means per class on the known-positive category features, identical
      on every rank. Without ``max_points_per_class`` (the published pass)
      every known positive is kept (features gathered class by class and
      de-duplicated by sample index, clustered on rank 0 with one generator
      seeded with seed + epoch, broadcast). With it, memory is bounded by
      the classes, not the images (see :class:`BottomKPositives`): each
      rank streams a bottom-k sample per class, the ranks merge them into
      the global one (the same for any world size, batch size or worker
      count) and cluster the classes in parallel, each with a generator
      seeded from (seed, epoch, class).
    - Before each iteration: the epoch and iteration, for the blending
      switch and the contrastive warm-up.

    Args:
        interval (int): Epochs between prototype updates (R). Defaults to 5.
        seed (int): Seed of the K-means draws (offset by the epoch), of the
            capped sample and of the image subset. Defaults to 0.
        n_init (int): K-means initialisations per class, the lowest inertia
            kept (run batched). Defaults to 10, as scikit-learn's KMeans
            that made the published prototypes.
        max_points_per_class (int, optional): Known positives kept per class
            at most, a uniform sample without replacement drawn anew each
            pass. The kept features take at most C x k x D values per rank,
            in the dtype the model computes them in. None (the published
            pass) keeps them all. Defaults to None.
        max_images_per_pass (int, optional): Run the pass over a seeded
            random subset of this many training images (the same for any
            world size) instead of all. Defaults to None (all).
    """

    # After DistSamplerSeedHook (NORMAL) has set the sampler's epoch, so the
    # pass sees the same order in an uninterrupted and a resumed run.
    priority = 'BELOW_NORMAL'
    required_method = 'set_prototypes'
    head_names = 'SARBHead or HSTHead'

    def __init__(self,
                 interval: int = 5,
                 seed: int = 0,
                 n_init: int = 10,
                 max_points_per_class: Optional[int] = None,
                 max_images_per_pass: Optional[int] = None) -> None:
        self.interval = check_int(interval, 'PrototypeHook interval')
        self.n_init = check_int(n_init, 'PrototypeHook n_init')
        self.max_points_per_class = None if max_points_per_class is None \
            else check_int(max_points_per_class,
                           'PrototypeHook max_points_per_class')
        self.max_images_per_pass = None if max_images_per_pass is None \
            else check_int(max_images_per_pass,
                           'PrototypeHook max_images_per_pass')
        # The K-means generator is seeded with seed + epoch.
        self.seed = check_int(seed, 'PrototypeHook seed', minimum=0)
        if self.seed >= 2**63 - 2**16:
            raise InvalidInputError(
                f'PrototypeHook seed must be below 2**63 - 2**16, got {seed}.')

    @classmethod
    def _head(cls, runner):
        head = super()._head(runner)
        # Another hook's prototypes (DSRB's quadrants) would be computed
        # without an error, and wrong.
        wanted = getattr(head, 'prototype_hook', 'PrototypeHook')
        if wanted != cls.__name__:
            raise TypeError(
                f"{type(head).__name__}'s prototypes are made by {wanted}: "
                f"use dict(type='{wanted}') in custom_hooks instead of "
                f'{cls.__name__}.')
        return head

    def before_train(self, runner) -> None:
        super().before_train(runner)
        head = self._head(runner)
        blending = getattr(head, 'use_ilrb', False) or getattr(
            head, 'use_plrb', False)
        if blending and head.blend_start_epoch >= runner.max_epochs:
            runner.logger.warning(
                f'model.head.blend_start_epoch={head.blend_start_epoch} but '
                f'training stops after {runner.max_epochs} epochs (epochs '
                'count from 0): no blending (ILRB / PLRB) will happen in this '
                'run. Lower blend_start_epoch or raise train_cfg.max_epochs.')

    def before_train_epoch(self, runner) -> None:
        head = self._head(runner)
        epoch = runner.epoch
        start = head.prototype_start_epoch
        if epoch < start or not head.uses_prototypes:
            return
        # An epoch resumed in the middle (ResumableEpochBasedTrainLoop) got
        # its prototypes, made at its start, with the checkpoint: made again
        # from the later weights they would differ.
        resumed_mid_epoch = getattr(
            getattr(runner, 'train_loop', None), 'first_batch_idx', 0)
        if (((epoch - start) % self.interval == 0 and not resumed_mid_epoch)
                or not head.has_prototypes):
            self.update_prototypes(runner, epoch)

    @torch.no_grad()
    def update_prototypes(self, runner, epoch: int) -> None:
        """Recompute the prototypes from the training set."""
        model = unwrap_model(runner.model)
        head = self._head(runner)
        start = time.perf_counter()
        loader, subset = self._pass_loader(runner.train_dataloader, epoch)
        if self.max_points_per_class is None:
            prototypes, mask, stats = self._serial_prototypes(
                model, head, loader, epoch)
        else:
            sample = self.collect_sample(model, loader, head, epoch)
            prototypes, mask, stats = self.cluster_sample(sample, head, epoch)
        head.set_prototypes(prototypes, mask.bool())
        self._log_pass(runner.logger, epoch, head, stats, subset)
        runner.logger.info(f'Prototype pass of epoch {epoch} took '
                           f'{time.perf_counter() - start:.2f} s.')

    def _pass_loader(self, loader, epoch: int):
        """The loader of the pass and (images in it, dataset size) or None.

        Without a cap the training loader is used as it is (the published
        pass). With one, or with ``max_images_per_pass``, a torch
        ``DataLoader`` is replaced by one over the pass's images that sees
        each once on some rank (no shuffling, no dropped last batch, no
        repeat-augment sampler), so the sample does not depend on the world
        size or the batch size. Other iterables of batches are used as
        given.
        """
        if self.max_points_per_class is None \
                and self.max_images_per_pass is None:
            return loader, None
        if not isinstance(loader, DataLoader):
            if self.max_images_per_pass is not None:
                raise TypeError(
                    'PrototypeHook max_images_per_pass needs a torch '
                    f'DataLoader as train_dataloader, got '
                    f'{type(loader).__name__}.')
            return loader, None
        total = len(loader.dataset)
        indices = pass_indices(total, self.max_images_per_pass, self.seed,
                               epoch)
        rank, world_size = get_dist_info()
        return pass_loader(loader, indices, rank,
                           world_size), (len(indices), total)

    def _serial_prototypes(self, model, head, loader, epoch: int):
        """Every known positive, clustered class after class on rank 0."""
        stats = dict(images=0)
        features, keys = self._collect_positives(model, loader, stats)
        device = head.prototypes.device
        prototypes = torch.zeros_like(head.prototypes)
        mask = torch.zeros_like(head.prototype_mask, dtype=torch.uint8)
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed + epoch)
        kept = torch.zeros(head.num_classes, dtype=torch.long)
        times = torch.zeros(head.num_classes, dtype=torch.float64)
        # One class at a time bounds the memory to the largest class.
        for cls in range(head.num_classes):
            members = keys[:, 1] == cls
            rows = gather_rows(features[members].to(device))
            images = gather_rows(keys[members, 0].to(device))
            # The distributed sampler pads shards by repeating images: keep
            # each image once, ordered by index whatever the world size.
            order = torch.argsort(images, stable=True)
            rows, images = rows[order], images[order]
            first = torch.ones_like(images, dtype=torch.bool)
            first[1:] = images[1:] != images[:-1]
            rows = rows[first]
            kept[cls] = len(rows)
            if len(rows) and is_main_process():
                start = time.perf_counter()
                prototypes[cls] = kmeans(
                    rows, head.num_prototypes, generator, n_init=self.n_init)
                times[cls] = time.perf_counter() - start
                mask[cls] = 1
        # Clustered once, on rank 0: every rank holds the same bits.
        broadcast(prototypes, src=0)
        broadcast(mask, src=0)
        broadcast(times, src=0)
        size = features.numel() * features.element_size()
        stats.update(
            seen=torch.bincount(keys[:, 1], minlength=head.num_classes),
            kept=kept,
            times=times,
            kept_bytes=size,
            buffer_bytes=size)
        return prototypes, mask, stats

    @torch.no_grad()
    def collect_sample(self, model, dataloader, head,
                       epoch: int) -> BottomKPositives:
        """This rank's bottom-k sample of the known positives of its
        batches (``max_points_per_class`` per class at most)."""
        was_training = model.training
        model.eval()
        sample = BottomKPositives(head.num_classes, self.max_points_per_class,
                                  head.prototypes.shape[-1], self.seed, epoch)
        progress = ProgressBar(len(dataloader)) if is_main_process() else None
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            category_features = model.extract_feat(data['inputs'])[-1]
            samples = data['data_samples']
            targets = torch.stack([s.gt_score for s in samples]).cpu()
            sample_idx = torch.tensor([s.sample_idx for s in samples])
            image, cls = torch.nonzero(targets > 0, as_tuple=True)
            device = category_features.device
            sample.images += len(samples)
            sample.add(sample_idx[image], cls,
                       category_features[image.to(device),
                                         cls.to(device)])
            if progress is not None:
                progress.update()
        model.train(was_training)
        return sample

    @torch.no_grad()
    def cluster_sample(self, sample: BottomKPositives, head, epoch: int):
        """Merge the ranks' samples and cluster the classes in parallel.

        Class ``c`` is merged onto (and clustered by) rank
        ``c % world_size``, ``world_size`` classes per round, so each rank
        holds one merged class at a time. Its K-means generator is seeded
        from (seed, epoch, c): any world size gives the same bits.

        Returns:
            tuple: prototypes, uint8 mask, and the statistics of the pass.
        """
        rank, world_size = get_dist_info()
        device = head.prototypes.device
        num_classes = head.num_classes
        prototypes = torch.zeros_like(head.prototypes)
        kept = torch.zeros(num_classes, dtype=torch.long)
        times = torch.zeros(num_classes, dtype=torch.float64)
        for first in range(0, num_classes, world_size):
            own = None
            for cls in range(first, min(first + world_size, num_classes)):
                points, _ = sample.merged_class(cls, device)
                kept[cls] = len(points)
                if cls % world_size == rank:
                    own = cls, points
            if own is not None and len(own[1]):
                cls, points = own
                generator = torch.Generator(device=device)
                generator.manual_seed(class_seed(self.seed, epoch, cls))
                start = time.perf_counter()
                prototypes[cls] = kmeans(
                    points, head.num_prototypes, generator, n_init=self.n_init)
                times[cls] = time.perf_counter() - start
            del own
        # Each class is non-zero on its owner only: the sum is exact.
        all_reduce(prototypes)
        prototypes.add_(0.0)
        all_reduce(times)
        kept_bytes, buffer_bytes = sample.feature_bytes()
        stats = dict(
            images=sample.images,
            seen=sample.seen,
            kept=kept,
            times=times,
            kept_bytes=kept_bytes,
            buffer_bytes=buffer_bytes)
        mask = (kept > 0).to(torch.uint8).to(head.prototype_mask.device)
        return prototypes, mask, stats

    def _log_pass(self, logger, epoch: int, head, stats, subset) -> None:
        """Log the pass (collective: sums and maxima over the ranks)."""
        seen = stats['seen'].clone()
        all_reduce(seen)
        images = torch.tensor([stats['images']], dtype=torch.long)
        all_reduce(images)
        memory = torch.tensor([stats['kept_bytes'], stats['buffer_bytes']],
                              dtype=torch.long)
        all_reduce(memory, op='max')
        for line in pass_report(epoch, self.max_points_per_class, subset,
                                int(images), seen, stats['kept'],
                                stats['times'], memory.tolist()):
            logger.info(line)

    @staticmethod
    def _collect_positives(
            model,
            dataloader,
            stats: Optional[dict] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Feature and (sample index, class) of every known positive."""
        was_training = model.training
        model.eval()
        features, keys = [], []
        progress = ProgressBar(len(dataloader)) if is_main_process() else None
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            category_features = model.extract_feat(data['inputs'])[-1]
            samples = data['data_samples']
            targets = torch.stack([s.gt_score for s in samples
                                   ]).to(category_features.device)
            sample_idx = torch.tensor([s.sample_idx for s in samples],
                                      device=targets.device)
            image, cls = torch.nonzero(targets > 0, as_tuple=True)
            # Kept on the CPU until gathered class by class.
            features.append(category_features[image, cls].float().cpu())
            keys.append(torch.stack([sample_idx[image], cls], dim=1).cpu())
            if stats is not None:
                stats['images'] += len(samples)
            if progress is not None:
                progress.update()
        model.train(was_training)
        return torch.cat(features), torch.cat(keys)
