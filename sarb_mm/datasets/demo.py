"""The generated demo dataset as a registered, self-creating dataset."""
import logging
import os.path as osp

from mmengine.dist import barrier, is_main_process
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from .coco import CocoMultiLabelDataset
from .synthetic import make_demo_dataset
from .utils import load_json_file


@DATASETS.register_module()
class SyntheticCocoDataset(CocoMultiLabelDataset):
    """COCO-format demo data that is generated on first use.

    When ``data_root`` has no annotation file yet, the whole dataset (both
    splits) is written there once, by the main process, with
    :func:`make_demo_dataset`; other processes wait for it. That only
    happens in a new or empty directory or in one the generator made
    itself (it holds the ``.sarb_mm_demo`` marker file); a directory with
    other contents is never written to and raises an error instead.

    Existing data is never regenerated: when its image count for this
    split, its ``image_size`` or its ``seed`` differ from the arguments, a
    warning names both and the data on disk is used as it is. Delete the
    directory (or use another ``data_root``) to regenerate it; in a
    config, give the train and val datasets the same generation
    parameters, since either may generate the data for both.

    Args:
        data_root (str): Where the dataset lives. Defaults to 'data/demo'.
        split (str): 'train' or 'val'.
        num_train (int): Training images to generate. Defaults to 2000.
        num_val (int): Validation images to generate. Defaults to 500.
        image_size (int): Side of the square images. Defaults to 64.
        seed (int): Generation seed. Defaults to 0.
    """

    #: Creates its files under ``data_root`` on first use (a missing
    #: ``data_root`` is not an error before the run).
    generates_data = True

    def __init__(self,
                 data_root: str = 'data/demo',
                 split: str = 'train',
                 num_train: int = 2000,
                 num_val: int = 500,
                 image_size: int = 64,
                 seed: int = 0,
                 **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        ann_file = f'annotations/instances_{split}.json'
        error = None
        if is_main_process() and not osp.isfile(osp.join(data_root, ann_file)):
            print_log(
                f'Demo dataset not found under {data_root}: generating it '
                f'once ({num_train} train + {num_val} val images, '
                f'{image_size}px, seed {seed}).',
                logger='current')
            try:
                make_demo_dataset(
                    data_root,
                    num_train=num_train,
                    num_val=num_val,
                    image_size=image_size,
                    seed=seed)
            except Exception as err:
                error = err
        # Every process passes the barrier, so a refusal on the main one
        # cannot leave the others waiting forever (they fail on the
        # missing annotation file).
        barrier()
        if error is not None:
            raise error
        super().__init__(
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=split,
            **kwargs)
        count = num_train if split == 'train' else num_val
        _warn_on_other_parameters(data_root, osp.join(data_root, ann_file),
                                  split, {
                                      f'num_{split}': count,
                                      'image_size': image_size,
                                      'seed': seed
                                  })


def _warn_on_other_parameters(data_root: str, ann_path: str, split: str,
                              requested: dict) -> None:
    """Warn when the demo data on disk was generated with other parameters.

    An existing demo dataset is never regenerated automatically: the train
    and val datasets of one config may pass different values, and would
    overwrite each other's data. So a mismatch is only reported.
    """
    if not osp.isfile(ann_path):
        return  # the loader reports it (a FIFO would block here)
    try:
        coco = load_json_file(ann_path)
        info = coco.get('info') or {}
        on_disk = {
            f'num_{split}': len(coco['images']),
            'image_size': info.get('image_size'),
            'seed': info.get('seed')
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # not a readable COCO file: the loader reports that
    differ = [(key, value, on_disk[key]) for key, value in requested.items()
              if on_disk[key] is not None and on_disk[key] != value]
    if not differ:
        return
    listing = ', '.join(f'{key}={value} requested but {found} on disk'
                        for key, value, found in differ)
    print_log(
        f'The demo dataset under {data_root!r} does not match what this '
        f'{split} dataset asks for: {listing}. The data on disk is used as '
        'it is (an existing demo dataset is never regenerated '
        'automatically). To regenerate it with the requested values, '
        f'delete {data_root!r} or use another data_root; otherwise set '
        f'{", ".join(key for key, _, _ in differ)} to the values on disk. '
        'In a config, define num_train, num_val, image_size and seed once '
        'for both the train and the val dataset.',
        logger='current',
        level=logging.WARNING)
