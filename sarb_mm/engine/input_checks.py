"""Inputs a run needs, checked before the Runner starts logging.

A dataset that is not there yet, backbone weights that cannot be
downloaded and a missing local checkpoint are the first errors a newcomer
meets. mmengine meets them late (after printing the environment, the whole
config and the hook table) and deep (a long traceback from the download or
the dataset's loader); these checks meet them first, in one message that
names the config key to change.
"""
import os
import os.path as osp
from typing import Iterator, Sequence, Tuple

from mmpretrain.registry import DATASETS

from sarb_mm.utils.errors import InvalidInputError

PREPARE = 'docs/data_preparation.md'


def _dataset_configs(node, key: str) -> Iterator[Tuple[str, dict]]:
    """Every dataset config under a dataloader's ``dataset``, wrappers
    (``dataset`` / ``datasets`` entries) included, with its config key."""
    if not isinstance(node, dict):
        return
    yield key, node
    if isinstance(node.get('dataset'), dict):
        yield from _dataset_configs(node['dataset'], f'{key}.dataset')
    for i, inner in enumerate(node.get('datasets') or []):
        yield from _dataset_configs(inner, f'{key}.datasets.{i}')


def _checks_its_root(dataset_type) -> bool:
    """sarb_mm's datasets, which need their ``data_root`` (others may
    download into it, as mmpretrain's CIFAR does), except those that create
    their files on first use (the demo)."""
    cls = dataset_type if isinstance(dataset_type, type) else \
        DATASETS.get(dataset_type) if isinstance(dataset_type, str) else None
    return (getattr(cls, '__module__', '').startswith('sarb_mm.')
            and not getattr(cls, 'generates_data', False))


def check_dataset_roots(cfg, splits: Sequence[str]) -> None:
    """The ``data_root`` of every dataset of the given splits exists.

    Args:
        cfg (Config): The run's config.
        splits (Sequence[str]): ``'train'``, ``'val'`` and/or ``'test'``:
            the loaders the tool will build.

    Raises:
        InvalidInputError: Naming the split, the dataset type, the config
            key and how to fix it.
    """
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict):
            continue
        for key, dataset in _dataset_configs(
                loader.get('dataset'), f'{split}_dataloader.dataset'):
            root = dataset.get('data_root')
            if (not isinstance(root, str) or not root or '://' in root
                    or not _checks_its_root(dataset.get('type'))):
                continue
            if not osp.isdir(osp.expanduser(root)):
                name = dataset.get('type')
                name = getattr(name, '__name__', name)
                example = osp.basename(root.rstrip('/')) or 'data'
                raise InvalidInputError(
                    f'The {split} dataset ({name}) is not there: its '
                    f'data_root {root!r} does not exist (config key '
                    f'{key}.data_root, from {os.getcwd()!r}). Prepare the '
                    f'dataset as {PREPARE} describes, or point the key at '
                    'where it is, e.g. --cfg-options '
                    f'{key}.data_root=/path/to/{example}. To try the plugin '
                    'without any dataset, train a demo config '
                    '(configs/*_demo_p10.py): it generates its data.')


def _config_items(node, key: str) -> Iterator[Tuple[str, object]]:
    """(config key, value) of every entry under ``node``, at any depth."""
    children = node.items() if isinstance(
        node, dict) else enumerate(node) if isinstance(node, list) else ()
    for name, value in children:
        yield f'{key}.{name}', value
        yield from _config_items(value, f'{key}.{name}')


def _cache_path(url: str) -> str:
    """Where mmengine's ``load_from_http`` looks for ``url``: torch's hub
    cache."""
    from urllib.parse import urlparse

    import torch
    return osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))


def _download(url: str) -> None:
    path = _cache_path(url)
    if not osp.isfile(path):
        import torch
        os.makedirs(osp.dirname(path), exist_ok=True)
        print(f'Downloading {url} to {path}', flush=True)
        torch.hub.download_url_to_file(url, path, progress=True)


def check_pretrained_weights(cfg, download: bool = True) -> None:
    """Pretrained weights (``init_cfg`` of type Pretrained, ``load_from``)
    and class-embedding files (``word_vectors``) can be read: a local file
    exists; a URL is downloaded now (into torch's hub cache, where mmengine
    then finds it) when ``download``.

    Raises:
        InvalidInputError: Naming the config key and the ways out.
    """
    items = list(_config_items(cfg.get('model'), 'model'))
    pretrained = [(key, init.get('checkpoint')) for key, init in items
                  if '.init_cfg' in key and isinstance(init, dict)
                  and init.get('type') == 'Pretrained']
    for key, checkpoint in pretrained:
        if not isinstance(checkpoint, str):
            continue
        # Random weights: no init_cfg at all (a list cannot hold None).
        random = key.rsplit('.init_cfg', 1)[0] + '.init_cfg'
        if '://' not in checkpoint:
            if not osp.isfile(osp.expanduser(checkpoint)):
                raise InvalidInputError(
                    f'The pretrained weights {checkpoint!r} (config key '
                    f'{key}.checkpoint) do not exist. Give the path of the '
                    f'file with --cfg-options {key}.checkpoint=PATH, or '
                    f'start from random weights with --cfg-options '
                    f'{random}=None.')
            continue
        if not checkpoint.startswith(('http://', 'https://')) or \
                not download:
            continue
        try:
            _download(checkpoint)
        except Exception as err:  # any network or disk failure
            raise InvalidInputError(
                f'Cannot download the pretrained weights {checkpoint} '
                f'(config key {key}.checkpoint): {type(err).__name__}: '
                f'{err}. Without network: download the file elsewhere and '
                f'give its path with --cfg-options {key}.checkpoint=PATH '
                f'(or copy it into {osp.dirname(_cache_path(checkpoint))}), '
                f'or start from random weights with --cfg-options '
                f'{random}=None.') from None
    for key, path in items:
        if not key.endswith('.word_vectors') or not isinstance(path, str):
            continue
        if '://' not in path and not osp.isfile(path):
            raise InvalidInputError(
                f'The class embeddings {path!r} (config key {key}) do not '
                'exist. Make them with tools/make_word_vectors.py '
                f'({PREPARE}), give their path with --cfg-options '
                f'{key}=PATH, or learn the embeddings instead with '
                f'--cfg-options {key}=None (not the published setting).')
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and '://' not in load_from \
            and not osp.isfile(osp.expanduser(load_from)):
        raise InvalidInputError(
            f'load_from {load_from!r} does not exist. Give an existing '
            'checkpoint (--cfg-options load_from=PATH) or remove the key.')
