"""A tiny demo SARB model, built in-process, and checkpoints of it."""
import argparse

import torch
from mmengine.config import DictAction

from tests.test_tools.tiny import tiny_options

CONFIG = 'configs/sarb_r18_demo_p10.py'


def tiny_cfg_options(data_root, **extra):
    """The demo config shrunk as in the tool tests, as a cfg_options dict
    (nothing is generated: inference builds no dataset)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    options = parser.parse_args(['--o', *tiny_options(data_root)]).o
    options.update(extra)
    return options


def save_checkpoint(path, state_dict, classes=None):
    """A checkpoint laid out as mmengine's Runner saves it."""
    meta = {} if classes is None else {
        'dataset_meta': {
            'classes': tuple(classes)
        }
    }
    torch.save({'meta': meta, 'state_dict': state_dict}, str(path))
    return str(path)
