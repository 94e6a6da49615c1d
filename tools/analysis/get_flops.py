"""Parameters and FLOPs at 448 px of one or more configs' models.

FLOPs are counted as mmpretrain's tools/analysis_tools/get_flops.py does
(mmengine's FlopAnalyzer: one multiply-add is one FLOP, elementwise ops are
free), over backbone, neck and head; the ``+attn`` column also counts the
two ops that analyzer skips: scaled-dot-product attention and the neck's
fused attention score. No weights are downloaded.

Example:
    python tools/analysis/get_flops.py configs/sarb_r101_coco_p10.py \
        configs/sarb_vit-b16-clip_coco_p10.py --img-size 448
"""
import argparse

from mmengine.config import Config

import sarb_mm  # noqa: F401
from sarb_mm.analysis.complexity import build_unweighted, model_complexity
from sarb_mm.utils.launch import run_tool


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', metavar='CONFIG')
    parser.add_argument('--img-size', type=int, default=448)
    return parser.parse_args()


def main():
    args = parse_args()
    print(f'| config | params (M) | GFLOPs @{args.img_size} (get_flops) '
          '| GFLOPs +attn | backbone / neck / head |')
    print('|---|---:|---:|---:|---|')
    for path in args.configs:
        stats = model_complexity(
            build_unweighted(Config.fromfile(path)), args.img_size)
        parts = ' / '.join(f'{stats[f"flops_{m}"] / 1e9:.2f}'
                           for m in ('backbone', 'neck', 'head'))
        print(f'| {path} | {stats["params"] / 1e6:.1f} | '
              f'{stats["flops"] / 1e9:.1f} | {stats["flops_all"] / 1e9:.1f}'
              f' | {parts} |')


if __name__ == '__main__':
    run_tool(main)
