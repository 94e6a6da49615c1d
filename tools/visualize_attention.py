"""Draw SARB's category attention maps for one image.

Example::

    python tools/visualize_attention.py configs/sarb_r18_demo_p10.py \\
        epoch_8.pth data/demo/val/val_000001.jpg --topk 3 --out attn.png
"""
import argparse
from types import SimpleNamespace

import torch

from sarb_mm.utils.launch import (CheckedDictAction, load_config,
                                  merge_cfg_options, run_tool)
from sarb_mm.utils.paths import check_output_file


def parse_args():
    parser = argparse.ArgumentParser(
        description='Draw the per-class attention maps of a SARB model '
        'over one image: the image and one overlay per class, titled with '
        'the class and its score.')
    parser.add_argument('config', help='SARB config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('image', help='image file')
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument(
        '--classes',
        nargs='+',
        metavar='NAME',
        help='the classes to show, by name')
    chosen.add_argument(
        '--topk',
        type=int,
        metavar='K',
        help='show the K highest-scoring classes (default '
        '3)')
    parser.add_argument(
        '--out',
        required=True,
        metavar='FIG',
        help='figure file; the format follows the '
        'extension (.png, .pdf, .svg, ...)')
    parser.add_argument(
        '--device',
        default=None,
        help="e.g. 'cpu' or 'cuda:0' (default: cuda:0 "
        'when available, else cpu)')
    parser.add_argument(
        '--alpha',
        type=float,
        default=0.5,
        help='opacity of the attention overlays')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CheckedDictAction,
        help='override config entries')
    return parser.parse_args()


def main():
    args = parse_args()
    # Imported here so that --help answers at once.
    from sarb_mm.apis.attention import check_attention_config, class_attention
    from sarb_mm.apis.model import init_model
    from sarb_mm.visualization.attention import (check_figure_path,
                                                 plot_class_attention)

    # Bad flags and a non-SARB config fail before the checkpoint is read.
    check_figure_path(args.out)
    check_output_file(
        args.out, '--out', inputs=[args.config, args.checkpoint, args.image])
    cfg = load_config(
        SimpleNamespace(
            config=args.config, work_dir=None, launcher='none', local_rank=0))
    merge_cfg_options(cfg, args.cfg_options)
    check_attention_config(cfg)
    device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    model = init_model(cfg, args.checkpoint, device=device)
    result = class_attention(
        model, args.image, classes=args.classes, topk=args.topk)
    plot_class_attention(
        result.image,
        result.maps,
        result.classes,
        result.scores,
        out_file=args.out,
        alpha=args.alpha)
    for name, score in zip(result.classes, result.scores):
        print(f'{name}: {score:.4f}')
    print(f'Saved the attention figure to {args.out}')


if __name__ == '__main__':
    run_tool(main)
