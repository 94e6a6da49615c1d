"""Time training steps of configs on synthetic input.

Prints the median step time and peak memory of each CONFIG (the first one is
the reference of the ratio column), optionally of a BASELINE config with the
same input, and optionally the efficient semantic-decoupling neck against
the naive form. With several configs each is measured in its own process,
so that on CPU each peak (the process's maximum RSS) is its own.

Examples:
    python tools/analysis/benchmark_train_step.py \
        configs/sarb_r101_coco_p10.py \
        --baseline configs/baseline_r101_coco_p10.py --compare-neck
    python tools/analysis/benchmark_train_step.py \
        configs/sarb_r101_coco_p10.py configs/sarb_vit-b16-clip_coco_p10.py \
        configs/sarb_swin-b_coco_p10.py configs/sarb_convnext-b_coco_p10.py \
        --batch-size 2 --steps 3 [--device cuda] [--amp]
"""
import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from mmengine.config import Config, DictAction
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.analysis.complexity import build_unweighted


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', metavar='CONFIG')
    parser.add_argument('--baseline', help='config to compare against')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--img-size', type=int, default=448)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--compare-neck',
        action='store_true',
        help='also time the neck against the naive (B,N,C,I)/(B,N,C,D) form')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='bfloat16 autocast, as mixed-precision training runs it')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--json', action='store_true', help=argparse.SUPPRESS)
    return parser.parse_args()


def build_model(path, args):
    cfg = Config.fromfile(path)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_unweighted(cfg).to(args.device).train()
    head = model.head
    # Every branch on: SARB's and DSRB's blending, SST's and HST's pseudo
    # labels.
    if hasattr(head, 'cooccurrence'):
        num_classes = head.num_classes
        head.cooccurrence.copy_(torch.rand(num_classes, num_classes))
    if hasattr(head, 'set_prototypes'):  # SARB, HST, DSRB
        head.set_prototypes(
            torch.randn_like(head.prototypes),
            torch.ones_like(head.prototype_mask))
    if hasattr(head, 'feature_bank'):  # SST
        head.feature_bank.normal_()
    if hasattr(head, 'prototype_start_epoch'):
        head.set_progress(head.prototype_start_epoch, 1, 2)
    elif hasattr(head, 'pseudo_label_epoch'):
        head.set_progress(head.pseudo_label_epoch + 4, 1, 2)
    return model


def synthetic_batch(model, args, generator):
    num_classes = model.head.num_classes
    images = torch.randint(
        0,
        256, (args.batch_size, 3, args.img_size, args.img_size),
        generator=generator,
        dtype=torch.uint8)
    targets = torch.randint(
        -1, 2, (args.batch_size, num_classes), generator=generator)
    samples = [DataSample().set_gt_score(t.float()) for t in targets]
    return dict(inputs=list(images), data_samples=samples)


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_train_steps(model, args):
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    times = []
    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.warmup + args.steps):
        data = model.data_preprocessor(
            synthetic_batch(model, args, generator), True)
        sync(args.device)
        start = time.perf_counter()
        with autocast(args):
            losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sync(args.device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    if args.device.startswith('cuda'):
        peak = torch.cuda.max_memory_allocated() / 2**20
        where = 'GPU'
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        where = 'process RSS (cumulative max)'
    return statistics.median(times), peak, where


def autocast(args):
    if not args.amp:
        return contextlib.nullcontext()
    return torch.autocast(args.device.split(':')[0], dtype=torch.bfloat16)


def measure(path, args):
    model = build_model(path, args)
    step, peak, where = time_train_steps(model, args)
    params = sum(p.numel() for p in model.parameters())
    return dict(config=path, step=step, peak=peak, where=where, params=params)


def measure_in_subprocess(path, args):
    """Run this script on one config in a fresh process (its own RSS)."""
    argv = [
        sys.executable, __file__, path, '--json', '--batch-size',
        str(args.batch_size), '--img-size',
        str(args.img_size), '--steps',
        str(args.steps), '--warmup',
        str(args.warmup), '--device', args.device
    ]
    if args.amp:
        argv.append('--amp')
    if args.cfg_options:
        argv += ['--cfg-options'
                 ] + [f'{k}={v}' for k, v in args.cfg_options.items()]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f'{path} failed:\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def naive_neck(neck, x):
    """The literal form: W3 on (B,N,C,I), pooling via (B,N,C,D)."""
    x = neck.reduce(x)
    features = x.flatten(2).transpose(1, 2)
    hidden = torch.tanh(
        neck.feature_proj(features).unsqueeze(2) *
        neck.embedding_proj(neck.embeddings))
    scores = neck.attn_score(neck.attn_fc(hidden)).squeeze(-1)
    attention = scores.softmax(dim=1)
    return (attention.unsqueeze(-1) * features.unsqueeze(2)).sum(1)


def compare_neck(model, args):
    neck = model.neck
    stride = 32
    in_channels = neck.reduce[0].in_channels if isinstance(
        neck.reduce, torch.nn.Sequential) else neck.feature_proj.in_features
    side = args.img_size // stride
    x = torch.randn(
        args.batch_size, in_channels, side, side, device=args.device)
    neck.eval()

    def timed(fn):
        times = []
        for step in range(args.warmup + args.steps):
            x.grad = None
            inp = x.clone().requires_grad_()
            sync(args.device)
            start = time.perf_counter()
            out = fn(inp)
            out.sum().backward()
            sync(args.device)
            if step >= args.warmup:
                times.append(time.perf_counter() - start)
        return statistics.median(times), out.detach()

    fast_time, fast = timed(lambda inp: neck((inp, ))[0])
    naive_time, naive = timed(lambda inp: naive_neck(neck, inp))
    diff = (fast - naive).abs().max().item()
    print(f'neck fwd+bwd, {tuple(x.shape)} input, C={neck.num_classes}: '
          f'efficient {fast_time * 1e3:.1f} ms, naive {naive_time * 1e3:.1f} '
          f'ms, speed-up {naive_time / fast_time:.2f}x, '
          f'max |diff| {diff:.2e}')


def main():
    args = parse_args()
    torch.manual_seed(0)
    if args.json:  # one config, for measure_in_subprocess
        print(json.dumps(measure(args.configs[0], args)))
        return
    print(f'device {args.device}, batch {args.batch_size}, '
          f'{args.img_size}px, median of {args.steps} steps'
          f'{", bfloat16 autocast" if args.amp else ""}')
    if len(args.configs) > 1:
        if args.compare_neck:
            sys.exit('--compare-neck takes a single CONFIG.')
        paths = ([args.baseline] if args.baseline else []) + args.configs
        rows = [measure_in_subprocess(p, args) for p in paths]
        print(f'peak: {rows[0]["where"]}')
        print('| config | params (M) | s/step | peak MiB | step x first |')
        print('|---|---:|---:|---:|---:|')
        for row in rows:
            print(f'| {row["config"]} | {row["params"] / 1e6:.1f} | '
                  f'{row["step"]:.3f} | {row["peak"]:.0f} | '
                  f'{row["step"] / rows[0]["step"]:.2f} |')
        return
    # On CPU the peak is the process's maximum RSS so far: measure the
    # (smaller) baseline first so that each printed peak is its own.
    base_step = None
    if args.baseline:
        base = build_model(args.baseline, args)
        base_step, base_peak, where = time_train_steps(base, args)
        print(f'{args.baseline}: {base_step:.3f} s/step, '
              f'peak {base_peak:.0f} MiB ({where})')
        del base
    config = args.configs[0]
    model = build_model(config, args)
    step, peak, where = time_train_steps(model, args)
    print(f'{config}: {step:.3f} s/step, peak {peak:.0f} MiB ({where})')
    if base_step:
        print(f'step ratio (config / baseline): {step / base_step:.2f}x')
    if args.compare_neck:
        compare_neck(model, args)


if __name__ == '__main__':
    main()
