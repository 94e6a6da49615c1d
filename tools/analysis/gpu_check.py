"""Train SARB and the baseline on generated COCO-shaped data, measured.

One command that exercises what a real multi-GPU run does, through
``tools/dist_train.sh`` (NCCL on GPUs, gloo on a CPU): training of the
published R101 configs at 448 px for a few hundred iterations, with and
without ``--amp``, the prototype pass, an evaluation and one resume. It
generates a COCO-2014-shaped dataset first (80 categories with COCO's
category ids, JPEG images with one to four objects each), and prints, per
run, training images per second, peak allocated GPU memory, the prototype
pass time, the final mAP, and whether the resume continued where the run
stopped.

The backbone starts from random weights and the class embeddings are
learned (no download, no GloVe file), so the mAP only shows that
evaluation ran, not what the recipe reaches.

Examples:
    # On a GPU machine (8 GPUs; about 300 iterations per run on one):
    python tools/analysis/gpu_check.py --gpus 8 --work-dir /tmp/gpu_check
    # A CPU smoke run with a narrow network and 64 px images (the test
    # suite runs this):
    python tools/analysis/gpu_check.py --tiny --methods sarb \\
        --work-dir /tmp/gpu_check_cpu
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import statistics
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = dict(
    sarb='configs/sarb_r101_coco_p10.py',
    baseline='configs/baseline_r101_coco_p10.py')
# COCO's 80 category ids (1 to 90 without the ten unused ones).
COCO_IDS = [
    i for i in range(1, 91)
    if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
]
# Iterations skipped before timing (cuDNN autotuning, worker start-up).
WARMUP_ITERS = 10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--gpus',
        type=int,
        default=None,
        help='processes (default: the number of CUDA devices, or 1)')
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['sarb', 'baseline'],
        choices=sorted(CONFIGS))
    parser.add_argument(
        '--amp',
        choices=['both', 'on', 'off'],
        default=None,
        help='runs with and/or without --amp (default: both with CUDA, '
        'off without: AMP needs CUDA)')
    parser.add_argument('--train-images', type=int, default=4800)
    parser.add_argument('--val-images', type=int, default=500)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--workers', type=int, default=8)
    parser.add_argument(
        '--tiny',
        action='store_true',
        help='narrow network, 64 px images and a few images: a CPU check '
        'that the tool works, not a measurement')
    parser.add_argument('--port', type=int, default=29517)
    return parser.parse_args(argv)


def write_coco(root: str,
               num_train: int,
               num_val: int,
               size: tuple,
               seed: int = 0) -> None:
    """COCO 2014 layout: train2014/, val2014/ and instances JSON files."""
    rng = np.random.default_rng(seed)
    categories = [dict(id=i, name=f'category_{i}') for i in COCO_IDS]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split, count in (('train2014', num_train), ('val2014', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for img_id in range(1, count + 1):
            name = f'COCO_{split}_{img_id:012d}.jpg'
            image = Image.new('RGB', size, tuple(rng.integers(0, 256, 3)))
            draw = ImageDraw.Draw(image)
            for _ in range(int(rng.integers(1, 5))):
                w, h = (int(v) for v in rng.integers(8, size[0] // 2 + 9, 2))
                x, y = int(rng.integers(0, size[0] - w // 2)), int(
                    rng.integers(0, size[1] - h // 2))
                draw.rectangle([x, y, x + w, y + h],
                               fill=tuple(rng.integers(0, 256, 3)))
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=img_id,
                        category_id=int(rng.choice(COCO_IDS)),
                        bbox=[x, y, w, h],
                        area=w * h,
                        iscrowd=0))
            image.save(osp.join(root, split, name), quality=90)
            images.append(
                dict(id=img_id, file_name=name, width=size[0], height=size[1]))
        with open(
                osp.join(root, 'annotations', f'instances_{split}.json'),
                'w') as f:
            json.dump(
                dict(
                    images=images,
                    annotations=annotations,
                    categories=categories), f)


def leaf_config(work_dir: str, method: str, args, data_root: str) -> str:
    """A config inheriting the published one, pointed at the generated
    data, with the run's length (and, with --tiny, a narrow network)."""
    tiny = args.tiny
    train_pipeline = test_pipeline = ''
    if tiny:  # 64 px instead of the published 448 px augmentation
        resize = "dict(type='Resize', scale=(64, 64))"
        train_pipeline = (
            "pipeline=[dict(type='SeedFromSample'), "
            f"dict(type='LoadImageFromFile'), {resize}, "
            "dict(type='RandomFlip', prob=0.5), dict(type='PackInputs')], ")
        test_pipeline = (f"pipeline=[dict(type='LoadImageFromFile'), "
                         f"{resize}, dict(type='PackInputs')], ")
    loader = (f'batch_size={args.batch_size}, num_workers={args.workers}, '
              'persistent_workers=False')
    lines = [
        f'_base_ = [{osp.join(REPO, CONFIGS[method])!r}]',
        f'train_dataloader = dict({loader}, dataset=dict({train_pipeline}'
        f'dataset=dict(data_root={data_root!r})))',
        f'val_dataloader = dict({loader}, dataset=dict({test_pipeline}'
        f'data_root={data_root!r}))',
        'test_dataloader = val_dataloader',
        f'train_cfg = dict(max_epochs={args.epochs}, '
        f'val_interval={args.epochs})',
        'default_hooks = dict(logger=dict(interval=1), '
        'checkpoint=dict(interval=1))',
    ]
    backbone = 'backbone=dict(init_cfg=None{})'.format(
        ', base_channels=16, stem_channels=16' if tiny else '')
    if method == 'sarb':
        neck = 'neck=dict(word_vectors=None{})'.format(
            ', in_channels=512, feat_channels=64, attn_channels=32, '
            'embed_dims=16' if tiny else '')
        head = 'head=dict(blend_start_epoch=1{})'.format(
            ', in_channels=64, out_channels=64' if tiny else '')
        lines.append(f'model = dict({backbone}, {neck}, {head})')
        # The prototype pass before every epoch from the second on.
        lines.append("custom_hooks = [dict(type='PartialLabelHook'), "
                     "dict(type='EpochSeedHook'), "
                     "dict(type='PrototypeHook', interval=1)]")
    else:
        head = 'head=dict(in_channels=512)' if tiny else 'head=dict()'
        lines.append(f'model = dict({backbone}, {head})')
    path = osp.join(work_dir, f'{method}_check.py')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def dist_train(config: str, gpus: int, work_dir: str, port: int,
               extra=()) -> None:
    env = dict(os.environ, PORT=str(port))
    cmd = [
        'bash',
        osp.join(REPO, 'tools', 'dist_train.sh'), config,
        str(gpus), '--work-dir', work_dir, *extra
    ]
    print('$ ' + ' '.join(cmd), flush=True)
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f'{" ".join(cmd)} failed:\n'
                         f'{(proc.stdout + proc.stderr)[-6000:]}')


def read_run(work_dir: str) -> dict:
    """Scalars and log lines of the newest run under ``work_dir``."""
    runs = sorted(glob.glob(osp.join(work_dir, '[0-9]*_[0-9]*')))
    if not runs:
        raise SystemExit(f'no mmengine run under {work_dir}')
    records = []
    with open(osp.join(runs[-1], 'vis_data', 'scalars.json')) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(glob.glob(osp.join(runs[-1], '*.log'))[0]) as f:
        log = f.read()
    return dict(records=records, log=log)


def summarise(run: dict, batch: int, gpus: int) -> dict:
    train = [r for r in run['records'] if 'loss' in r and 'time' in r]
    timed = [r['time'] for r in train[WARMUP_ITERS:]] or \
        [r['time'] for r in train]
    memory = [r['memory'] for r in train if 'memory' in r]
    passes = [
        float(s) for s in re.findall(
            r'Prototype pass of epoch \d+ took ([\d.]+) s', run['log'])
    ]
    maps = [
        value for r in run['records'] for key, value in r.items()
        if key.endswith('/mAP')
    ]
    return dict(
        iterations=len(train),
        images_per_second=batch * gpus / statistics.median(timed),
        peak_memory_mib=max(memory) if memory else None,
        pass_seconds=passes[-1] if passes else None,
        mAP=maps[-1] if maps else None,
        epochs=max((r.get('epoch', 0) for r in train), default=0))


def main(argv=None) -> list:
    args = parse_args(argv)
    import torch  # after the arguments: --help stays fast
    cuda = torch.cuda.is_available()
    gpus = args.gpus or (torch.cuda.device_count() if cuda else 1)
    amp = args.amp or ('both' if cuda else 'off')
    if amp != 'off' and not cuda:
        raise SystemExit('--amp needs CUDA (mmengine runs float16 autocast '
                         'on CUDA only).')
    if args.tiny:
        args.train_images = min(args.train_images, 32)
        args.val_images = min(args.val_images, 16)
        args.batch_size = min(args.batch_size, 8)
        args.workers = 0
    os.makedirs(args.work_dir, exist_ok=True)
    data_root = osp.join(osp.abspath(args.work_dir), 'coco')
    if not osp.isdir(osp.join(data_root, 'val2014')):
        write_coco(data_root, args.train_images, args.val_images,
                   (64, 48) if args.tiny else (640, 480))
    modes = dict(both=[False, True], on=[True], off=[False])[amp]
    rows = []
    for method in args.methods:
        config = leaf_config(args.work_dir, method, args, data_root)
        for use_amp in modes:
            name = f'{method}{"_amp" if use_amp else ""}'
            work_dir = osp.join(args.work_dir, name)
            dist_train(config, gpus, work_dir, args.port,
                       ['--amp'] if use_amp else [])
            row = dict(
                run=name,
                **summarise(read_run(work_dir), args.batch_size, gpus))
            rows.append(row)
            if method == args.methods[0] and not use_amp:
                # One resume: one epoch more from the last checkpoint.
                dist_train(config, gpus, work_dir, args.port, [
                    '--resume', '--cfg-options',
                    f'train_cfg.max_epochs={args.epochs + 1}'
                ])
                resumed = read_run(work_dir)
                row['resumed'] = (
                    f'Load checkpoint from {work_dir}' in resumed['log']
                    or 'resumed' in resumed['log'].lower()) and summarise(
                        resumed, args.batch_size,
                        gpus)['epochs'] == args.epochs + 1
    device = torch.cuda.get_device_name(0) if cuda else 'CPU'
    print(f'\n{gpus} x {device}, batch {args.batch_size} per process, '
          f'{args.train_images} training images, {args.epochs} epochs'
          f'{" (--tiny: not a measurement)" if args.tiny else ""}')
    print('| run | iterations | img/s | peak GPU memory (MiB) | prototype '
          'pass (s) | mAP | resume |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        memory = '-' if r['peak_memory_mib'] is None else \
            f'{r["peak_memory_mib"]:.0f}'
        pass_s = '-' if r['pass_seconds'] is None else \
            f'{r["pass_seconds"]:.1f}'
        mean_ap = '-' if r['mAP'] is None else f'{r["mAP"]:.2f}'
        resumed = {True: 'ok', False: 'FAILED', None: '-'}[r.get('resumed')]
        print(f'| {r["run"]} | {r["iterations"]} | '
              f'{r["images_per_second"]:.1f} | {memory} | {pass_s} | '
              f'{mean_ap} | {resumed} |')
    with open(osp.join(args.work_dir, 'gpu_check.json'), 'w') as f:
        json.dump(dict(device=device, gpus=gpus, runs=rows), f, indent=1)
    if any(r.get('resumed') is False for r in rows):
        raise SystemExit('the resume did not continue the run')
    return rows


if __name__ == '__main__':
    main(sys.argv[1:])
