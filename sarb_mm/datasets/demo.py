"""The generated demo dataset as a registered, self-creating dataset."""
import os.path as osp
from mmengine.dist import barrier, is_main_process
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from .coco import CocoMultiLabelDataset
from .synthetic import make_demo_dataset


@DATASETS.register_module()
class SyntheticCocoDataset(CocoMultiLabelDataset):
    """COCO-format demo data that is generated on first use.

    When ``data_root`` has no annotation file yet, the whole dataset (both
    splits) is written there once, by the main process, with
    :func:`make_demo_dataset`; other processes wait for it. That only
    happens in a new or empty directory or in one the generator made
    itself (it holds the ``.sarb_mm_demo`` marker file); a directory with
    other contents is never written to and raises an error instead.

    Args:
        data_root (str): Where the dataset lives. Defaults to 'data/demo'.
        split (str): 'train' or 'val'.
        num_train (int): Training images to generate. Defaults to 2000.
        num_val (int): Validation images to generate. Defaults to 500.
        image_size (int): Side of the square images. Defaults to 64.
        seed (int): Generation seed. Defaults to 0.
    """

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
        if is_main_process() and not osp.isfile(osp.join(data_root,
                                                         ann_file)):
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
