"""Write the (C, E) category-embedding .npy used by SemanticDecouplingNeck.

Two sources: GloVe word vectors (E=300, the published setting) or a CLIP text
encoder (E=512 for ViT-B/16, 768 for ViT-L/14). The neck takes E from the
file, so configs need no edit for either.

GloVe examples (positional arguments: GLOVE OUT):
    python tools/make_word_vectors.py glove.840B.300d.txt \
        data/word_vectors/coco_glove_300d.npy --dataset coco
    python tools/make_word_vectors.py glove.840B.300d.txt out.npy \
        --config configs/sarb_r101_vg_p10.py     # class names of its dataset
    python tools/make_word_vectors.py glove.840B.300d.txt out.npy \
        --classes names.txt                      # one class name per line

CLIP examples (positional argument: OUT only):
    python tools/make_word_vectors.py data/word_vectors/coco_clip_b16.npy \
        --source clip --dataset coco             # downloads OpenAI ViT-B/16
    python tools/make_word_vectors.py coco_clip_l14.npy --source clip \
        --dataset coco --arch ViT-L/14 --templates openai_imagenet_sub
    python tools/make_word_vectors.py coco_clip_b16.npy --source clip \
        --dataset coco --checkpoint ViT-B-16.pt \
        --tokenizer clip_tokenizer/    # offline: vocab.json, merges.txt
    python tools/make_word_vectors.py out.npy --source clip --classes \
        names.txt --model-config my_clip.py --checkpoint my_clip.pth

CLIP embeds each name in every prompt template of a set (default
openai_imagenet, the CLIP paper's 80 ImageNet templates; also
openai_imagenet_sub (7), openai_cifar100 (18), vanilla ('a photo of a {}')),
L2-normalises each, averages and L2-normalises the mean. Without --checkpoint
the OpenAI checkpoint of --arch is downloaded into torch hub's cache and its
sha256 checked. --model-config is an mmengine config whose ``model`` is a
CLIPZeroShot (or CLIP) dict as in mmpretrain's configs/clip/.
"""
import argparse
import os
import os.path as osp
import re

import numpy as np

from sarb_mm.datasets.voc import VOC2007_CLASSES
from sarb_mm.utils import clip_embeddings
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import run_tool
from sarb_mm.utils.paths import (atomic_path, check_input_file,
                                 check_output_file)
from sarb_mm.utils.word_vectors import (COCO_CLASSES, build_word_vectors,
                                        check_glove_file)

USAGE = """
  %(prog)s GLOVE OUT (--dataset NAME | --config FILE | --classes FILE)
        [--dim DIM]
  %(prog)s OUT --source clip (--dataset NAME | --config FILE |
        --classes FILE) [--arch ARCH | --model-config FILE]
        [--checkpoint PATH] [--tokenizer NAME_OR_DIR] [--templates SET]
        [--device DEVICE]"""

CLIP_OPTIONS = ('arch', 'model_config', 'checkpoint', 'tokenizer', 'templates',
                'device')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], usage=USAGE)
    parser.add_argument(
        'paths',
        nargs='+',
        metavar='PATH',
        help='glove: the GloVe text file (e.g. 840B.300d) and the output '
        '.npy; clip: the output .npy only (.npy is appended if missing)')
    parser.add_argument(
        '--source',
        choices=['glove', 'clip'],
        default='glove',
        help='where the embeddings come from (default: glove)')
    parser.add_argument(
        '--dim', type=int, help='glove: vector width of the file (300)')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--dataset', choices=['coco', 'voc'])
    source.add_argument(
        '--config', help='take the class names of this config\'s val set')
    source.add_argument('--classes', help='text file, one class per line')
    clip = parser.add_argument_group('clip source')
    clip.add_argument(
        '--arch',
        choices=list(clip_embeddings.CLIP_PRESETS),
        help='CLIP preset (default ViT-B/16: E=512; ViT-L/14: E=768)')
    clip.add_argument(
        '--model-config',
        help='mmengine config whose `model` is a CLIPZeroShot/CLIP dict '
        '(instead of --arch; needs --checkpoint)')
    clip.add_argument(
        '--checkpoint',
        help='local OpenAI CLIP .pt or state dict (default: download the '
        'OpenAI checkpoint of --arch into the torch hub cache)')
    clip.add_argument(
        '--tokenizer',
        help='HuggingFace name or local directory with vocab.json and '
        'merges.txt (default: the preset\'s, e.g. '
        'openai/clip-vit-base-patch16)')
    clip.add_argument(
        '--templates',
        choices=clip_embeddings.TEMPLATE_SETS,
        help='prompt template set (default openai_imagenet)')
    clip.add_argument(
        '--device', help='where to run the text encoder (default cpu)')
    args = parser.parse_args(argv)
    clip_given = [
        '--' + name.replace('_', '-') for name in CLIP_OPTIONS
        if getattr(args, name) is not None
    ]
    if args.source == 'glove':
        if len(args.paths) != 2:
            parser.error(
                f'--source glove takes two paths, GLOVE OUT; got '
                f'{len(args.paths)} ({" ".join(args.paths)}). For CLIP '
                'embeddings pass --source clip with OUT only.')
        if clip_given:
            parser.error(f'{", ".join(clip_given)} only apply to --source '
                         'clip.')
        args.glove, args.out = args.paths
        args.dim = 300 if args.dim is None else args.dim
        return args
    if len(args.paths) != 1:
        parser.error(f'--source clip takes one path, OUT; got '
                     f'{len(args.paths)} ({" ".join(args.paths)}). A GloVe '
                     'file is not used with CLIP.')
    if args.dim is not None:
        parser.error('--dim only applies to --source glove: the CLIP width '
                     'comes from the model.')
    if args.arch is not None and args.model_config is not None:
        parser.error('Give --arch or --model-config, not both.')
    if args.model_config is not None and args.checkpoint is None:
        parser.error('--model-config needs --checkpoint: only the --arch '
                     'presets have a download address.')
    args.out = args.paths[0]
    args.arch = args.arch or 'ViT-B/16'
    args.templates = args.templates or clip_embeddings.DEFAULT_TEMPLATES
    args.device = args.device or 'cpu'
    return args


# Files the tool reads; the output may be none of them.
INPUT_ARGS = ('glove', 'classes', 'config', 'checkpoint', 'model_config')


def class_names(args):
    if args.dataset == 'coco':
        return list(COCO_CLASSES)
    if args.dataset == 'voc':
        return list(VOC2007_CLASSES)
    if args.classes:
        check_input_file(
            args.classes,
            '--classes file',
            hint='Give a text file with one class name per line, in '
            'label-index order.')
        from sarb_mm.datasets.utils import read_text_lines
        names = [
            line.strip()
            for _, line in read_text_lines(args.classes, '--classes file')
            if line.strip()
        ]
        if not names:
            raise InvalidInputError(
                f'--classes file {args.classes!r} holds no class name; give '
                'one per line, in label-index order.')
        return names
    from mmpretrain.registry import DATASETS

    import sarb_mm  # noqa: F401
    from sarb_mm.utils.config_files import load_config_file
    cfg = load_config_file(args.config)
    cfg.val_dataloader.dataset.pipeline = []
    return list(DATASETS.build(cfg.val_dataloader.dataset).metainfo['classes'])


def output_path(out, inputs=()):
    """The path actually written (``np.save`` appends ``.npy``), checked
    before the work: not a directory or special file, not an input."""
    path = out if out.endswith('.npy') else f'{out}.npy'
    for candidate in (out, path):
        if osp.isdir(candidate) or candidate.endswith(('/', os.sep)):
            raise InvalidInputError(
                f'Output {candidate!r} is a directory; give a file name '
                'ending in .npy, e.g. data/word_vectors/coco_glove_300d.npy.')
    return check_output_file(path, 'Output', inputs=inputs)


def check_names(names):
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


def main():
    args = parse_args()
    out = output_path(args.out,
                      [getattr(args, name, None) for name in INPUT_ARGS])
    if args.source == 'glove':
        check_glove_file(args.glove)  # before building a config's dataset
    names = class_names(args)
    check_names(names)
    if args.source == 'glove':
        vectors = build_word_vectors(names, args.glove, args.dim)
    else:
        vectors = clip_embeddings.make_clip_embeddings(
            names,
            arch=args.arch,
            model_config=args.model_config,
            checkpoint=args.checkpoint,
            tokenizer=args.tokenizer,
            templates=args.templates,
            device=args.device)
    with atomic_path(out) as tmp:
        np.save(tmp, vectors)
    note = '' if out == args.out else f' (.npy appended to {args.out!r})'
    print(f'Wrote {vectors.shape} embeddings of {len(names)} classes to '
          f'{out}{note}')


if __name__ == '__main__':
    run_tool(main)
