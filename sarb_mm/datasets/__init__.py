from .coco import CocoMultiLabelDataset
from .demo import SyntheticCocoDataset
from .jsonl import JsonLinesPartialDataset, make_jsonl_demo
from .lvis import LVISPartialDataset
from .native_partial import NativePartialDataset
from .openimages import OpenImagesPartialDataset, parse_openimages_labels
from .partial_labels import (load_partial_labels, make_partial_labels,
                             split_fingerprint, validate_known_ratio,
                             validate_seed)
from .partial_wrapper import PartialLabelDataset
from .synthetic import make_demo_dataset
from .transforms import CheckedLoadImageFromFile
from .vg import VG200MultiLabelDataset
from .voc import VOC2007MultiLabelDataset

__all__ = [
    'CocoMultiLabelDataset', 'VOC2007MultiLabelDataset',
    'VG200MultiLabelDataset', 'PartialLabelDataset', 'SyntheticCocoDataset',
    'make_partial_labels', 'load_partial_labels', 'validate_known_ratio',
    'validate_seed', 'split_fingerprint', 'make_demo_dataset',
    'CheckedLoadImageFromFile', 'NativePartialDataset',
    'JsonLinesPartialDataset', 'LVISPartialDataset',
    'OpenImagesPartialDataset', 'parse_openimages_labels', 'make_jsonl_demo'
]
