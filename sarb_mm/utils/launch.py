"""Shared start-up of ``tools/train.py`` and ``tools/test.py``."""
import argparse
import ast
import os
import os.path as osp
import sys
from typing import Callable, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .config_files import load_config_file
from .errors import InvalidInputError
from .paths import check_input_file


class CheckedDictAction(DictAction):
    """mmengine's ``--cfg-options`` parser, with a usage error (not a
    traceback) for an item that is not ``KEY=VALUE`` or does not parse."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key = item.partition('=')[0]
            if '=' not in item or not key.strip():
                parser.error(f'{option_string} {item!r}: expected KEY=VALUE, '
                             'e.g. train_cfg.max_epochs=20')
        try:
            super().__call__(parser, namespace, values, option_string)
        except (AssertionError, ValueError, SyntaxError,
                RecursionError) as err:
            parser.error(f'{option_string}: cannot parse {" ".join(values)!r}'
                         f' ({err or type(err).__name__}); quote lists and '
                         "tuples whole, e.g. 'key=[1,2]'.")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments that train.py and test.py share (mmpretrain's names)."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CheckedDictAction,
        help='override config entries, e.g. '
        'train_dataloader.dataset.known_ratio=0.5')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args) -> Config:
    """Read ``args.config`` and apply the shared arguments to it.

    ``--cfg-options`` is not merged here: each tool merges it last, so that
    it overrides what the tool's own flags set.
    """
    check_input_file(args.config, 'Config file')
    if not args.config.endswith(('.py', '.json', '.yaml', '.yml')):
        raise InvalidInputError(
            f'Config file {args.config}: configs are .py (or .json / .yaml) '
            'files.')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    try:
        cfg = load_config_file(args.config)
    except SyntaxError as err:
        raise InvalidInputError(_syntax_error_message(args.config,
                                                      err)) from None
    except FileNotFoundError as err:
        raise InvalidInputError(
            f'Config {args.config} refers to a file that does not exist '
            f'({err.filename or err}); check its _base_ paths.') from None
    except KeyError as err:
        raise InvalidInputError(
            f'Config {args.config} refers to {err} of its _base_ (through '
            '{{_base_.xxx}} or _delete_), which the base does not '
            'define.') from None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def _syntax_error_message(path: str, err: SyntaxError) -> str:
    """Name the file (the config or one of its bases) and line at fault:
    mmengine's own message names neither."""
    located = _find_syntax_error(path, set())
    if located is not None:
        where, found = located
        return (f'Syntax error in config {where}, line {found.lineno}: '
                f'{found.msg}.')
    return f'Syntax error in config {path} or its bases: {err}.'


def _find_syntax_error(path: str, seen: set):
    if path in seen or not osp.isfile(path):
        return None
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as err:
        return path, err
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '_base_' for t in node.targets)):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return None
            for base in [bases] if isinstance(bases, str) else bases:
                found = _find_syntax_error(
                    osp.normpath(osp.join(osp.dirname(path), base)), seen)
                if found is not None:
                    return found
    return None


def merge_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Apply ``--cfg-options``; a key path that runs through a non-dict, or
    a value that would replace a component's dict config, is an error
    naming it."""
    if not options:
        return
    for key, value in options.items():
        _check_component_kept(cfg, key, value)
        try:
            cfg.merge_from_dict({key: value})
        except (TypeError, KeyError, AttributeError, IndexError) as err:
            raise InvalidInputError(
                f'--cfg-options {key}={value!r}: cannot apply ({err}). A '
                'dotted key must follow dicts of the config; list items are '
                'addressed by index, e.g. custom_hooks.0.interval=2.'
            ) from None


_MISSING = object()


def _config_entry(cfg, key: str):
    """The value at a dotted ``--cfg-options`` key, or ``_MISSING``."""
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for part in key.split('.'):
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
        elif isinstance(node, (list, tuple)) and part.isdigit():
            node = node[int(part)] if int(part) < len(node) else _MISSING
        else:
            return _MISSING
    return node


def _check_component_kept(cfg, key: str, value) -> None:
    """A dict config with a ``type`` is built into an object (a model part,
    dataset, hook, ...) by mmengine, which fails with a bare ``TypeError``
    on anything but a dict: refuse replacing one by a plain value. None
    stays allowed: it switches an optional part off (e.g. the neck)."""
    current = _config_entry(cfg, key)
    is_component = isinstance(current, dict) and 'type' in current
    if not is_component or value is None or isinstance(value, dict):
        return
    example = next((name for name in current if name != 'type'), 'NAME')
    raise InvalidInputError(
        f'--cfg-options {key}={value!r}: {key} is a component config, '
        f'dict(type={current["type"]!r}, ...), which is built into an '
        'object, so it must stay a dict config with a type. Set its entries '
        f'instead, e.g. {key}.{example}=VALUE (or {key}.type=NAME to change '
        'its class).')


def run_tool(main: Callable[[], None]) -> None:
    """Run a tool's ``main``; bad input ends it with its message alone.

    Besides :class:`InvalidInputError`, a config entry that a class does not
    take (mmengine's registry reports it as a ``TypeError`` naming the
    class and the argument), and a component config that is not a dict
    (mmengine's ``cfg should be a dict ...``; the config checks name the key
    where they can), are bad input too.
    """
    try:
        main()
    except InvalidInputError as err:
        _fail(str(err))
    except TypeError as err:
        if _is_config_argument_error(err):
            _fail(f'{err}. A config entry does not match the arguments of '
                  'the class it configures: check its spelling in the config '
                  'and in --cfg-options.')
        if _is_non_dict_component_error(err):
            _fail(f'{err}. An entry that is built into an object (a model '
                  'part such as model.head, a dataset, a hook, ...) must be a '
                  "dict config with a type, e.g. dict(type='SARBHead', ...): "
                  'check the config and --cfg-options.')
        raise


def _is_non_dict_component_error(err: TypeError) -> bool:
    """Whether ``err`` is mmengine's registry refusing to build from a
    config that is not a dict."""
    return (str(err).startswith('cfg should be a dict')
            and _raised_in_mmengine(err))


def _is_config_argument_error(err: TypeError) -> bool:
    """Whether ``err`` is a call from mmengine's config machinery (a
    registry build or a Runner ``build_*``) that passed an argument the
    callee does not take, rather than a bug inside some code."""
    message = str(err)
    if ('unexpected keyword argument' not in message
            and 'required positional argument' not in message):
        return False
    # mmengine's registry re-raises with the class name: look at the
    # original error, whose innermost frame is the failing call site.
    while isinstance(err.__context__, TypeError):
        err = err.__context__
    return _raised_in_mmengine(err)


def _raised_in_mmengine(err: BaseException) -> bool:
    frame = err.__traceback__
    if frame is None:
        return False
    while frame.tb_next is not None:
        frame = frame.tb_next
    return f'{os.sep}mmengine{os.sep}' in frame.tb_frame.f_code.co_filename


def _fail(message: str) -> None:
    print(f'{osp.basename(sys.argv[0])}: error: {message}', file=sys.stderr)
    sys.exit(2)


def prepare_distributed(cfg: Config) -> None:
    """Initialise torch.distributed with gloo when there is no GPU.

    mmengine's ``init_dist`` pins a CUDA device, which fails on CPU-only
    machines (CI, CPU clusters). There the process group is created here
    with gloo from the launcher's environment, and DDP is told not to use
    device ids; the Runner then sees an initialised group and reuses it. On
    GPUs nothing changes: mmengine initialises NCCL as usual.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher == 'slurm':
        # Mirror what mmengine derives from SLURM for the GPU case.
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ['SLURM_LOCALID'])
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            raise RuntimeError('CPU slurm runs need MASTER_ADDR in the '
                               'environment (the first node\'s address).')
    elif cfg.launcher != 'pytorch':
        raise InvalidInputError(
            f'launcher={cfg.launcher!r} is not supported on CPU; use '
            'torchrun (--launcher pytorch) or slurm.')
    elif 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
        raise InvalidInputError(
            '--launcher pytorch needs the environment torchrun sets (RANK, '
            'WORLD_SIZE, ...): start with tools/dist_train.sh or torchrun.')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', device_ids=None)


def teardown_distributed() -> None:
    """Leave the process group together, so no rank aborts at exit."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def build_runner(cfg: Config):
    """Set up distributed execution, then build the (configured) Runner."""
    prepare_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
