"""Shared settings that shrink the demo configs to a seconds-long run."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def tiny_options(data_root, sarb=True, epochs=3, num_train=64, num_val=40):
    """--cfg-options for a tiny, fast demo run from generated data."""
    opts = [
        f'train_dataloader.dataset.dataset.data_root={data_root}',
        f'train_dataloader.dataset.dataset.num_train={num_train}',
        f'train_dataloader.dataset.dataset.num_val={num_val}',
    ]
    # Every dataset describes the same generated data: whichever is built
    # first generates it, the others warn if they ask for something else.
    for loader in ('val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.dataset.data_root={data_root}',
            f'{loader}.dataset.num_train={num_train}',
            f'{loader}.dataset.num_val={num_val}',
        ]
    opts += [
        'train_dataloader.batch_size=16',
        'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs}',
        'default_hooks.logger.interval=1',
        'model.backbone.base_channels=16',
        'model.backbone.stem_channels=16',
        'randomness.seed=0',
    ]
    if sarb:
        opts += [
            'model.neck.in_channels=128', 'model.neck.feat_channels=64',
            'model.neck.attn_channels=32', 'model.neck.embed_dims=16',
            'model.head.in_channels=64', 'model.head.out_channels=64',
            'model.head.blend_start_epoch=0', 'custom_hooks.2.interval=1'
        ]
    else:
        opts += ['model.head.in_channels=128']
    return opts


def run_tool(args, timeout=600, env=None, check=True):
    """Run a tools/ script; fail with its output when it fails."""
    env = dict(os.environ if env is None else env)
    env['PYTHONPATH'] = REPO  # test-only hooks under tests/
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env)
    if check:
        assert proc.returncode == 0, (
            proc.stdout[-4000:] + proc.stderr[-4000:])
    return proc


def read_scalars(work_dir):
    """The JSON log lines mmengine wrote under work_dir (newest run).

    Training runs log to ``<timestamp>/vis_data/scalars.json``, test runs to
    ``<timestamp>/<timestamp>.json``.
    """
    paths = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')) +
        glob.glob(osp.join(work_dir, '*', '[0-9]*_[0-9]*.json')))
    assert paths, f'no mmengine JSON log under {work_dir}'
    decoder = json.JSONDecoder()
    with open(paths[-1]) as f:
        # mmengine writes the test log from every rank into the same file,
        # so a 2-process test log can hold the (identical) record twice.
        return [decoder.raw_decode(line)[0] for line in f if line.strip()]


def load_tool(relpath: str):
    """Import a tools/ script as a module (its functions, without running
    it as a process)."""
    import importlib.util
    name = 'tool_' + relpath.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name,
                                                  osp.join(REPO, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
