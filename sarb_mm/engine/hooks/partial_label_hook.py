"""Checks that data and model agree, and records the partial-label split."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS


def unwrap_model(model):
    """The bare model behind DDP / other mmengine wrappers."""
    return model.module if is_model_wrapper(model) else model


def model_num_classes(model):
    """Number of classes the model predicts, or None if it does not say."""
    model = unwrap_model(model)
    counts = {
        name: getattr(getattr(model, name, None), 'num_classes', None)
        for name in ('neck', 'head')
    }
    if None not in counts.values() and counts['neck'] != counts['head']:
        raise ValueError(
            f"model.neck.num_classes={counts['neck']} differs from "
            f"model.head.num_classes={counts['head']}; set both to the "
            "dataset's number of classes.")
    return counts['head']


@HOOKS.register_module()
class PartialLabelHook(Hook):
    """Fail early on a class-count mismatch and save the partial labels.

    Before any iteration, every built loop's dataset must have as many
    classes as the model's head; otherwise training would crash with a shape
    error mid-epoch or, worse, evaluate against shifted classes. The
    training split's -1/0/1 matrix is written to
    ``<work_dir>/partial_labels.npy`` so the exact split is auditable and can
    be reused through ``partial_file``.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        num_classes = model_num_classes(runner.model)
        for name in ('train', 'val', 'test'):
            loop = getattr(runner, f'_{name}_loop', None)
            if not isinstance(loop, BaseLoop):
                continue
            dataset = loop.dataloader.dataset
            classes = dataset.metainfo.get('classes')
            if (num_classes is not None and classes is not None
                    and len(classes) != num_classes):
                raise ValueError(
                    f'The {name} dataset ({type(dataset).__name__}) has '
                    f'{len(classes)} classes but the model head predicts '
                    f'{num_classes}. Set model.head.num_classes (and the '
                    f'neck\'s num_classes for SARB) to {len(classes)} in the '
                    'config, or point the dataset at the right annotations.')
            partial = getattr(dataset, 'partial_labels', None)
            if name == 'train' and partial is not None and is_main_process():
                path = osp.join(runner.work_dir, 'partial_labels.npy')
                dataset.save(path)
                runner.logger.info(f'Saved the training partial labels '
                                   f'{partial.shape} to {path}')
