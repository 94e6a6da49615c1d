"""Shared settings that shrink the demo configs to a seconds-long run."""
import contextlib
import glob
import io
import json
import logging
import os
import os.path as osp
import random
import runpy
import subprocess
import sys
import traceback
import warnings

import numpy as np
import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import DefaultScope
from mmengine.utils import progressbar
from mmengine.visualization import Visualizer

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


def run_tool(args, timeout=600, env=None, check=True, in_process=None):
    """Run a tools/ script; fail with its output when it fails.

    A script runs inside this process (its ``main`` as ``__main__``, with
    its own argv, working directory, output and mmengine instances) unless
    ``env`` is given or ``in_process=False``: a fresh Python would import
    torch and mmpretrain again (seconds) and add nothing a test checks,
    except where it checks the environment or a process of its own.
    Returns a ``subprocess.CompletedProcess`` either way.
    """
    if in_process is None:
        in_process = env is None and args[0].endswith('.py')
    if in_process:
        proc = run_in_process(args)
    else:
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


def run_in_process(args, cwd=REPO):
    """``python args...`` run from ``cwd``, in this process."""
    managers = (MMLogger, MessageHub, Visualizer, DefaultScope)
    instances = {m: set(m._instance_dict) for m in managers}
    saved = dict(
        argv=sys.argv,
        cwd=os.getcwd(),
        environ=dict(os.environ),
        threads=torch.get_num_threads(),
        deterministic=torch.are_deterministic_algorithms_enabled(),
        rng=(torch.get_rng_state(), np.random.get_state(), random.getstate()))
    out, err = io.StringIO(), io.StringIO()
    # Loggers made before the run (mmengine's own) keep their streams:
    # point them at this run's output, as a fresh process's would be.
    handlers = [(h, h.stream) for logger in MMLogger._instance_dict.values()
                for h in logger.handlers if type(h) is logging.StreamHandler]
    # mmengine's progress bars default to the sys.stdout of import time.
    progress = (progressbar.ProgressBar.__init__, progressbar.track_progress,
                progressbar.track_iter_progress,
                progressbar.track_parallel_progress)
    progress_defaults = [f.__defaults__ for f in progress]
    returncode = 0
    sys.argv = list(args)
    os.chdir(cwd)
    os.environ['PYTHONPATH'] = REPO  # for the processes the tool starts
    try:
        for handler, _ in handlers:
            # Not setStream: it flushes the old stream, which may be the
            # closed capture of an earlier test.
            handler.stream = out
        for function, defaults in zip(progress, progress_defaults):
            function.__defaults__ = tuple(
                out if hasattr(value, 'write') else value
                for value in defaults)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(
                err), warnings.catch_warnings():
            warnings.simplefilter('default')
            warnings.showwarning = _print_warning
            try:
                runpy.run_path(osp.join(cwd, args[0]), run_name='__main__')
            except SystemExit as exc:
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                returncode = exc.code if isinstance(exc.code, int) else \
                    int(exc.code is not None)
            except BaseException:  # noqa: B036 - the crash hooks of the
                # resume tests raise KeyboardInterrupt; a process prints it
                traceback.print_exc()
                returncode = 1
    finally:
        for handler, stream in handlers:
            handler.stream = stream
        for function, defaults in zip(progress, progress_defaults):
            function.__defaults__ = defaults
        for manager in managers:
            for name in set(manager._instance_dict) - instances[manager]:
                instance = manager._instance_dict.pop(name)
                for handler in getattr(instance, 'handlers', [])[:]:
                    handler.close()
                    instance.removeHandler(handler)
        sys.argv = saved['argv']
        os.chdir(saved['cwd'])
        os.environ.clear()
        os.environ.update(saved['environ'])
        torch.set_num_threads(saved['threads'])
        torch.use_deterministic_algorithms(saved['deterministic'])
        torch.set_rng_state(saved['rng'][0])
        np.random.set_state(saved['rng'][1])
        random.setstate(saved['rng'][2])
    return subprocess.CompletedProcess(args, returncode, out.getvalue(),
                                       err.getvalue())


def _print_warning(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(
        warnings.formatwarning(message, category, filename, lineno, line))


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
