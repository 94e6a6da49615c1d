"""Write the (C, 300) category-embedding .npy used by SemanticDecouplingNeck.

Examples:
    python tools/make_word_vectors.py glove.840B.300d.txt \
        data/word_vectors/coco_glove_300d.npy --dataset coco
    python tools/make_word_vectors.py glove.840B.300d.txt out.npy \
        --config configs/sarb_r101_vg_p10.py     # class names of its dataset
    python tools/make_word_vectors.py glove.840B.300d.txt out.npy \
        --classes names.txt                      # one class name per line
"""
import argparse
import os
import os.path as osp
import re

import numpy as np

from sarb_mm.datasets.voc import VOC2007_CLASSES
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import run_tool
from sarb_mm.utils.word_vectors import (COCO_CLASSES, build_word_vectors,
                                        check_glove_file)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('glove', help='GloVe text file (e.g. 840B.300d)')
    parser.add_argument(
        'out', help='output .npy path (.npy is appended if missing)')
    parser.add_argument(
        '--dim', type=int, default=300, help='vector width of the GloVe file')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--dataset', choices=['coco', 'voc'])
    source.add_argument(
        '--config', help='take the class names of this config\'s val set')
    source.add_argument('--classes', help='text file, one class per line')
    return parser.parse_args()


def class_names(args):
    if args.dataset == 'coco':
        return list(COCO_CLASSES)
    if args.dataset == 'voc':
        return list(VOC2007_CLASSES)
    if args.classes:
        if not osp.isfile(args.classes):
            raise InvalidInputError(
                f'--classes file {args.classes!r} does not exist or is not a '
                'regular file; give a text file with one class name per '
                'line, in label-index order.')
        with open(args.classes, encoding='utf-8') as f:
            names = [line.strip() for line in f if line.strip()]
        if not names:
            raise InvalidInputError(
                f'--classes file {args.classes!r} holds no class name; give '
                'one per line, in label-index order.')
        return names
    if not osp.isfile(args.config):
        raise InvalidInputError(f'Config file {args.config!r} does not '
                                'exist.')
    from mmengine.config import Config
    from mmpretrain.registry import DATASETS

    import sarb_mm  # noqa: F401
    cfg = Config.fromfile(args.config)
    cfg.val_dataloader.dataset.pipeline = []
    return list(DATASETS.build(cfg.val_dataloader.dataset).metainfo['classes'])


def output_path(out):
    """The path actually written: ``np.save`` appends ``.npy`` otherwise."""
    path = out if out.endswith('.npy') else f'{out}.npy'
    for candidate in (out, path):
        if osp.isdir(candidate) or candidate.endswith(('/', os.sep)):
            raise InvalidInputError(
                f'Output {candidate!r} is a directory; give a file name '
                'ending in .npy, e.g. data/word_vectors/coco_glove_300d.npy.')
    return path


def main():
    args = parse_args()
    out = output_path(args.out)
    check_glove_file(args.glove)  # before building a config's dataset
    names = class_names(args)
    placeholders = [n for n in names if re.fullmatch(r'vg_class_\d+', n)]
    if placeholders:
        raise InvalidInputError(
            f'{len(placeholders)} class names are placeholders (e.g. '
            f'{placeholders[0]!r}): VG200MultiLabelDataset only knows label '
            'indices. Pass --classes FILE with the 200 category names, one '
            'per line in label-index order: reconstruct them with '
            'tools/misc/vg200_names.py, or use the authors\' '
            'vg_200_vector.npy instead '
            '(docs/data_preparation.md#word-vectors).')
    vectors = build_word_vectors(names, args.glove, args.dim)
    try:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        np.save(out, vectors)
    except OSError as err:
        raise InvalidInputError(
            f'Cannot write {out!r} ({err.strerror or err}); choose a '
            'writable path.') from None
    note = '' if out == args.out else f' (.npy appended to {args.out!r})'
    print(f'Wrote {vectors.shape} embeddings of {len(names)} classes to '
          f'{out}{note}')


if __name__ == '__main__':
    run_tool(main)
