"""Build a trained model for inference from a config and a checkpoint."""
import copy
import logging
import os
import os.path as osp
from types import SimpleNamespace
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

import sarb_mm  # noqa: F401  (registers the components, safe loading)
from sarb_mm.engine.checkpoints import (check_checkpoint_fits, read_checkpoint,
                                        state_dict_of)
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import load_config, merge_cfg_options

EMBEDDINGS_KEY = 'neck.embeddings'


def init_model(config: Union[str, os.PathLike, Config],
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a classifier from its config and load a trained checkpoint.

    A checkpoint is enough for SARB's class embeddings: when the config's
    ``model.neck.word_vectors`` file is absent (e.g. the GloVe ``.npy`` of a
    published config on a machine that never made it), the neck is built
    with placeholder embeddings and takes them from the checkpoint's
    ``neck.embeddings``; the model is the same as one built from the file.
    Weights are loaded strictly (missing, unexpected or reshaped keys and
    non-finite values are an error listing them), with ``torch.load``'s
    ``weights_only`` safe loader.

    Class names come from the checkpoint's ``meta['dataset_meta']`` (what
    mmengine's Runner saves: the training set's metainfo); failing that,
    from the config's test dataset (its ``classes`` / ``metainfo`` or its
    class's ``METAINFO``); failing that, they are ``class_0``,
    ``class_1``, ... with a warning, so that a bare state dict still runs.

    Args:
        config (str | PathLike | Config): The config file or object (not
            modified; a copy is used).
        checkpoint (str, optional): The checkpoint (``.pth``). Without it
            the weights stay as initialised.
        device (str | torch.device): Where to put the model. Defaults to
            ``'cpu'``.
        cfg_options (dict, optional): Config overrides, as ``--cfg-options``
            gives them (``{'model.head.thr': 0.3}``).

    Returns:
        nn.Module: The model in eval mode on ``device``, with ``cfg`` (the
        config) and ``dataset_meta`` (``{'classes': (...)}``) attributes
        (and mmpretrain's ``_config`` / ``_dataset_meta``, which its
        inferencers read).

    Raises:
        InvalidInputError: For an unreadable config or checkpoint, a
            checkpoint that does not fit the config, missing class
            embeddings (neither the ``word_vectors`` file nor the checkpoint
            holds them) or an unusable ``device``.
    """
    cfg = _read_config(config)
    merge_cfg_options(cfg, cfg_options)
    device = _check_device(device)
    if 'model' not in cfg:
        raise InvalidInputError(
            f'Config {_config_name(config)} has no "model" entry: give the '
            'config the model was trained with.')

    ckpt = read_checkpoint(checkpoint) if checkpoint is not None else None
    missing_vectors = _missing_word_vectors(cfg)
    model_cfg = copy.deepcopy(cfg.model)
    if missing_vectors is not None:
        _check_embeddings_in(ckpt, checkpoint, missing_vectors, config)
        # Placeholder (learned) embeddings of the checkpoint's width; the
        # checkpoint's replace them.
        model_cfg.neck.word_vectors = None
        embeddings = state_dict_of(ckpt)[EMBEDDINGS_KEY]
        model_cfg.neck.embed_dims = embeddings.shape[1]
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = _build(cfg, model_cfg)
    if missing_vectors is not None:
        _embeddings_to_buffer(model.neck)

    meta = {}
    if ckpt is not None:
        check_checkpoint_fits(model, ckpt, checkpoint, non_strict_hint=False)
        state = state_dict_of(ckpt)
        _warn_on_other_embeddings(model, state, cfg, checkpoint)
        model.load_state_dict(state, strict=True)
        meta = ckpt.get('meta') or {}
    classes = _class_names(meta, cfg, model, checkpoint)

    model.cfg = cfg
    model.dataset_meta = {'classes': classes}
    # Read by mmpretrain's inferencers and visualizer.
    model._config = cfg
    model._dataset_meta = model.dataset_meta
    model.to(device)
    model.eval()
    return model


def _read_config(config) -> Config:
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if not isinstance(config, (str, os.PathLike)):
        raise InvalidInputError(
            f'config must be a config file path or an mmengine Config, got '
            f'{type(config).__name__}.')
    return load_config(
        SimpleNamespace(
            config=os.fspath(config),
            work_dir=None,
            launcher='none',
            local_rank=0))


def _config_name(config) -> str:
    if isinstance(config, Config):
        return config.filename or '(Config object)'
    return os.fspath(config)


def _check_device(device) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InvalidInputError(
            f'device={device!r} is not a device ({err}); use e.g. "cpu", '
            '"cuda" or "cuda:0".') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise InvalidInputError(
            f'device={str(device)!r}: no CUDA GPU is available here; use '
            '"cpu".')
    if (device.type == 'cuda' and device.index is not None
            and device.index >= torch.cuda.device_count()):
        raise InvalidInputError(
            f'device={str(device)!r}: there are only '
            f'{torch.cuda.device_count()} GPU(s) (cuda:0 ...).')
    return device


def _missing_word_vectors(cfg: Config) -> Optional[str]:
    """The neck's ``word_vectors`` path if it is set but not a file."""
    neck = cfg.model.get('neck')
    if not isinstance(neck, dict):
        return None
    path = neck.get('word_vectors')
    if path is None or osp.isfile(path):
        return None
    return path


def _check_embeddings_in(ckpt: Optional[dict], checkpoint: Optional[str],
                         path: str, config) -> None:
    if ckpt is None:
        raise InvalidInputError(
            f'The class embeddings are missing: config {_config_name(config)}'
            f' sets model.neck.word_vectors={path!r}, which does not exist, '
            'and no checkpoint was given. Pass the trained checkpoint (it '
            f'holds them as {EMBEDDINGS_KEY}), or make the file with '
            'tools/make_word_vectors.py.')
    if EMBEDDINGS_KEY not in state_dict_of(ckpt):
        raise InvalidInputError(
            f'The class embeddings are missing: config {_config_name(config)}'
            f' sets model.neck.word_vectors={path!r}, which does not exist, '
            f'and checkpoint {checkpoint} has no {EMBEDDINGS_KEY}. Make the '
            'file with tools/make_word_vectors.py, or use the checkpoint '
            'trained with this config.')


def _build(cfg: Config, model_cfg: dict) -> nn.Module:
    from mmpretrain.registry import MODELS
    imports = cfg.get('custom_imports')
    if imports:
        import_modules_from_strings(**imports)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        return MODELS.build(model_cfg)


def _embeddings_to_buffer(neck: nn.Module) -> None:
    """Make the placeholder embeddings a buffer, as the word-vector file
    would have: the model then matches the one built from the file."""
    placeholder = neck.embeddings.detach().clone()
    del neck.embeddings
    neck.register_buffer('embeddings', placeholder)


def _warn_on_other_embeddings(model: nn.Module, state: dict, cfg: Config,
                              checkpoint: str) -> None:
    """The checkpoint's embeddings win over a word-vector file that differs
    (the model was trained with the checkpoint's); say so."""
    neck = getattr(model, 'neck', None)
    path = (cfg.model.get('neck') or {}).get('word_vectors')
    if (path is None or neck is None or EMBEDDINGS_KEY not in state or
            not isinstance(getattr(neck, 'embeddings', None), torch.Tensor)):
        return
    if not osp.isfile(path):
        return
    ours = neck.embeddings.detach().float()
    theirs = state[EMBEDDINGS_KEY].detach().float().to(ours.device)
    if ours.shape == theirs.shape and not torch.allclose(
            ours, theirs, rtol=1e-4, atol=1e-6):
        print_log(
            f'model.neck.word_vectors file {path} differs from the '
            f'embeddings in checkpoint {checkpoint}; the checkpoint\'s are '
            'used (the model was trained with them).',
            logger='current',
            level=logging.WARNING)


def _num_classes(model: nn.Module) -> Optional[int]:
    head = getattr(model, 'head', None)
    return getattr(head, 'num_classes', None)


def _class_names(meta: dict, cfg: Config, model: nn.Module,
                 checkpoint: Optional[str]) -> Tuple[str, ...]:
    num_classes = _num_classes(model)
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    found = (dataset_meta or {}).get('classes') if isinstance(
        dataset_meta, dict) else None
    if found is not None:
        found = tuple(str(name) for name in found)
        if num_classes is not None and len(found) != num_classes:
            raise InvalidInputError(
                f'Checkpoint {checkpoint} names {len(found)} classes in '
                f"meta['dataset_meta']['classes'] but the model has "
                f'{num_classes}: the checkpoint and config do not belong '
                'together.')
        return found
    found = _config_classes(cfg)
    if found is not None and (num_classes is None
                              or len(found) == num_classes):
        return found
    if num_classes is None:
        raise InvalidInputError(
            'Cannot tell the class names: the checkpoint has no '
            "meta['dataset_meta']['classes'] and the model's head has no "
            'num_classes.')
    source = (f'Checkpoint {checkpoint} has no class names in its meta'
              if checkpoint is not None else 'No checkpoint was given')
    print_log(
        f'{source} and the config\'s test dataset names none (or another '
        f'number than the model\'s {num_classes}); the classes are called '
        'class_0, class_1, ... Set test_dataloader.dataset.metainfo.classes '
        'in the config to name them.',
        logger='current',
        level=logging.WARNING)
    return tuple(f'class_{i}' for i in range(num_classes))


def _config_classes(cfg: Config) -> Optional[Tuple[str, ...]]:
    """Class names the config's test dataset declares without building it
    (building could generate or read a whole dataset)."""
    from mmpretrain.registry import DATASETS
    dataset = ((cfg.get('test_dataloader') or {}).get('dataset')
               or (cfg.get('val_dataloader') or {}).get('dataset'))
    while isinstance(dataset, dict):
        names = dataset.get('classes') or (dataset.get('metainfo')
                                           or {}).get('classes')
        if _is_name_list(names):
            return tuple(str(n) for n in names)
        dataset_type = dataset.get('type')
        if isinstance(dataset_type, str):
            with DefaultScope.overwrite_default_scope(
                    cfg.get('default_scope', 'mmpretrain')):
                dataset_class = DATASETS.get(dataset_type)
            names = getattr(dataset_class, 'METAINFO', {}).get('classes')
            if _is_name_list(names):
                return tuple(str(n) for n in names)
        dataset = dataset.get('dataset')  # wrappers
    return None


def _is_name_list(names) -> bool:
    return isinstance(
        names, Sequence) and not isinstance(names, str) and len(names) > 0
