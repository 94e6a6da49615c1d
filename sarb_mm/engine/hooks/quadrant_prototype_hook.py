"""Keeps DSRB's per-quadrant class prototypes up to date during training."""
import time
from typing import Optional, Tuple

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.utils import ProgressBar
from mmpretrain.registry import HOOKS

from sarb_mm.models.heads.dsrb_head import QUADRANTS, peak_quadrants_of
from sarb_mm.utils.validation import check_int
from .partial_label_hook import unwrap_model
from .prototype_hook import PrototypeHook
from .prototype_sampling import BottomKPositives


@HOOKS.register_module()
class QuadrantPrototypeHook(PrototypeHook):
    """Co-occurrence, quadrant prototypes and training progress for
    ``DSRBHead``.

    As ``PrototypeHook`` (co-occurrence before training, idle alpha / beta
    kept out of the optimizer, progress before each iteration, a pass
    before the epochs ``blend_start_epoch + k * interval``), but the pass
    makes four prototypes per class: the known positives of class ``c`` are
    split by the quadrant their attention-weighted map of ``c`` peaks in,
    and prototype ``(c, q)`` is the mean category feature of (at most
    ``max_per_quadrant`` of) those in quadrant ``q``; a quadrant without
    any gets the mean over the class's four quadrants' kept features. A
    class without known positives gets none and is never blended.

    The authors keep the first 100 per quadrant in the order of the
    shuffled training loader; here a seeded uniform sample of 100 (a
    bottom-k sample by hash of (seed, epoch, class, quadrant, image)),
    which is the same for any world size, batch size or worker count and
    takes at most 4 x C x 100 x D floats per rank.

    Args:
        interval (int): Epochs between prototype updates. Defaults to 5.
        seed (int): Seed of the sample. Defaults to 0.
        max_per_quadrant (int): Known positives kept per class and
            quadrant. Defaults to 100, as published.
        max_images_per_pass (int, optional): Run the pass over a seeded
            random subset of this many training images. Defaults to None
            (all).
    """

    head_names = 'DSRBHead'

    def __init__(self,
                 interval: int = 5,
                 seed: int = 0,
                 max_per_quadrant: int = 100,
                 max_images_per_pass: Optional[int] = None) -> None:
        super().__init__(
            interval=interval,
            seed=seed,
            max_images_per_pass=max_images_per_pass)
        self.max_per_quadrant = check_int(
            max_per_quadrant, 'QuadrantPrototypeHook max_per_quadrant')

    @torch.no_grad()
    def update_prototypes(self, runner, epoch: int) -> None:
        """Recompute the quadrant prototypes from the training set."""
        model = unwrap_model(runner.model)
        head = self._head(runner)
        start = time.perf_counter()
        loader, subset = self._pass_loader(runner.train_dataloader, epoch)
        sample = self.collect_quadrants(model, loader, head, epoch)
        prototypes, mask, kept = quadrant_means(sample, head.num_classes,
                                                head.prototypes.device)
        head.set_prototypes(prototypes, mask)
        seen = sample.seen.clone()
        all_reduce(seen)
        filled = int((kept[mask] == 0).sum())
        scope = 'the training loader' if subset is None else \
            f'{subset[0]} of {subset[1]} training images'
        runner.logger.info(
            f'Epoch {epoch}: quadrant prototypes of {int(mask.sum())}/'
            f'{head.num_classes} classes over {scope}, from '
            f'{int(kept.sum())} of {int(seen.sum())} known positives seen '
            f'(at most {self.max_per_quadrant} per class and quadrant); '
            f'{filled} quadrants without a positive took their class mean; '
            f'{time.perf_counter() - start:.2f} s.')

    @torch.no_grad()
    def collect_quadrants(self, model, dataloader, head,
                          epoch: int) -> BottomKPositives:
        """This rank's sample of category features per (class, quadrant),
        the buckets ``class * 4 + quadrant`` of a bottom-k sample."""
        was_training = model.training
        model.eval()
        sample = BottomKPositives(head.num_classes * QUADRANTS,
                                  self.max_per_quadrant,
                                  head.prototypes.shape[-1], self.seed, epoch)
        progress = ProgressBar(len(dataloader)) if is_main_process() else None
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            feats = model.extract_feat(data['inputs'])
            quadrants, features = peak_quadrants_of(feats), feats[-1]
            samples = data['data_samples']
            targets = torch.stack([s.gt_score for s in samples]).cpu()
            sample_idx = torch.tensor([s.sample_idx for s in samples])
            image, cls = torch.nonzero(targets > 0, as_tuple=True)
            at = image.to(features.device), cls.to(features.device)
            buckets = cls * QUADRANTS + quadrants[at].cpu()
            sample.images += len(samples)
            sample.add(sample_idx[image], buckets, features[at])
            if progress is not None:
                progress.update()
        model.train(was_training)
        return sample


@torch.no_grad()
def quadrant_means(sample: BottomKPositives, num_classes: int,
                   device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge the ranks' samples into (C, 4, D) prototypes.

    Collective (every rank gets the same bits).

    Returns:
        tuple: prototypes (C, 4, D), bool (C,) mask of the classes with
        known positives, and the long (C, 4) points kept per quadrant.
    """
    prototypes = torch.zeros(num_classes, QUADRANTS, sample.dim, device=device)
    mask = torch.zeros(num_classes, dtype=torch.bool, device=device)
    kept = torch.zeros(num_classes, QUADRANTS, dtype=torch.long)
    for cls in range(num_classes):
        parts = [
            sample.merged_class(cls * QUADRANTS + q, device)[0]
            for q in range(QUADRANTS)
        ]
        kept[cls] = torch.tensor([len(part) for part in parts])
        if not int(kept[cls].sum()):
            continue
        # The authors fill empty quadrants with the mean of all kept maps.
        average = torch.cat(parts).mean(0)
        for quadrant, part in enumerate(parts):
            prototypes[cls, quadrant] = part.mean(0) if len(part) else average
        mask[cls] = True
    return prototypes, mask, kept
