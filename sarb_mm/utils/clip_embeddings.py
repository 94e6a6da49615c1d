"""Category embeddings from a CLIP text encoder (docs/data_preparation.md).

Each class name is put into every prompt template of a set (e.g. "a photo
of a {}."), each prompt is embedded by mmpretrain's CLIP text encoder and
L2-normalised, the prompts' embeddings are averaged and the mean is
L2-normalised again: the prompt ensemble of the CLIP paper. mmpretrain's
``CLIPZeroShot.prepare_text_prototype`` does exactly this and is reused.

Template sets (``templates``; mmpretrain's ``PROMPT_MAP``):

- ``'openai_imagenet'`` (default): the 80 ImageNet templates of the CLIP
  paper's prompt ensemble.
- ``'openai_imagenet_sub'``: the 7 of them the CLIP authors selected.
- ``'openai_cifar100'``: the 18 CIFAR-100 templates of the CLIP paper.
- ``'vanilla'``: the single template ``'a photo of a {}'``.

Weights are OpenAI's CLIP checkpoints (TorchScript ``.pt`` archives) or
mmpretrain's conversion of them; only the text encoder is loaded. Loading a
TorchScript archive can run code it holds, so one is loaded only if its
sha256 is that of an OpenAI checkpoint of ``CLIP_PRESETS``; any other CLIP
weights are read as a plain state dict (``torch.load(weights_only=True)``).
"""
import copy
import hashlib
import os
import os.path as osp
import pickle
import warnings
import zipfile
from typing import Dict, List, Optional, Sequence, Union
from urllib.error import URLError

import numpy as np
import torch

from ..dependencies import (INSTALL_HINT, TRANSFORMERS_REQUIREMENT,
                            installed_version, transformers_problem)
from .checkpoint_safety import register_safe_checkpoint_globals
from .errors import InvalidInputError, MissingInputFileError
from .paths import path_problem
from .word_vectors import SPLIT_NAMES, check_class_embeddings

DEFAULT_TEMPLATES = 'openai_imagenet'
TEMPLATE_SETS = ('openai_imagenet', 'openai_imagenet_sub', 'openai_cifar100',
                 'vanilla')

# Prefixes of the text-encoder entries of a CLIP state dict. OpenAI's
# checkpoints and mmpretrain's conversion of them share these names (the
# converter renames ``visual.*`` only).
TEXT_KEY_PREFIXES = ('token_embedding.', 'positional_embedding',
                     'transformer.', 'ln_final.', 'text_projection')


def _vision_stand_in(proj_dim: int) -> dict:
    """A one-layer vision tower: only the text encoder is run and loaded,
    and the real towers (86M / 304M parameters) would only cost building
    time and memory."""
    return dict(
        vision_backbone=dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=8,
                num_layers=1,
                num_heads=1,
                feedforward_channels=8),
            img_size=16,
            patch_size=16),
        projection=dict(
            type='CLIPProjection', in_channels=8, out_channels=proj_dim))


def _text_preset(width: int, heads: int, hf_name: str) -> dict:
    """The text side of mmpretrain's ``clip_vit-*_zeroshot-cls_in1k``
    configs (12 layers, vocabulary 49408, context 77)."""
    return dict(
        type='CLIPZeroShot',
        **_vision_stand_in(width),
        text_backbone=dict(
            type='CLIPTransformer',
            width=width,
            layers=12,
            heads=heads,
            attn_mask=True),
        tokenizer=dict(
            type='AutoTokenizer', name_or_path=hf_name, use_fast=False),
        vocab_size=49408,
        transformer_width=width,
        proj_dim=width,
        context_length=77,
        text_prototype=[],
        text_prompt='vanilla')


# OpenAI's checkpoints; the hex directory in each URL is the file's sha256.
_OPENAI_CLIP = 'https://openaipublic.azureedge.net/clip/models'
CLIP_PRESETS: Dict[str, dict] = {
    'ViT-B/16':
    dict(
        model=_text_preset(512, 8, 'openai/clip-vit-base-patch16'),
        url=f'{_OPENAI_CLIP}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e'
        '85e4ecb61988df416f/ViT-B-16.pt',
        sha256='5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988'
        'df416f'),
    'ViT-L/14':
    dict(
        model=_text_preset(768, 12, 'openai/clip-vit-large-patch14'),
        url=f'{_OPENAI_CLIP}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f'
        '7c2e0eca1737a03836/ViT-L-14.pt',
        sha256='b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737'
        'a03836'),
}

# The TorchScript archives that may be loaded (``torch.jit.load`` runs the
# TorchScript code of an archive, e.g. its ``__setstate__``): OpenAI's.
OFFICIAL_TORCHSCRIPT_SHA256 = frozenset(preset['sha256']
                                        for preset in CLIP_PRESETS.values())


def file_sha256(path: str, chunk_bytes: int = 1 << 20) -> str:
    """The sha256 (hex) of a file, read in chunks (the checkpoints are
    0.3 to 0.9 GB)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _clip_model_class():
    """mmpretrain's ``CLIPZeroShot``, or an error saying what to install.

    mmpretrain registers a placeholder that raises when built unless
    ``transformers`` and ``pycocotools`` are installed.
    """
    found = installed_version('transformers')
    if found is None:
        raise InvalidInputError(
            'CLIP class embeddings need the transformers package (for the '
            f"CLIP tokenizer and mmpretrain's CLIP): {INSTALL_HINT}")
    problem = transformers_problem(found)
    if problem:
        raise InvalidInputError(problem)
    import mmpretrain.models  # noqa: F401  (registers CLIPZeroShot)
    from mmpretrain.registry import MODELS
    model_class = MODELS.get('CLIPZeroShot')
    if not isinstance(model_class, type):
        raise InvalidInputError(
            'mmpretrain registered CLIP as unavailable: its multimodal '
            'models also need pycocotools. Run: pip install pycocotools '
            f"'{TRANSFORMERS_REQUIREMENT}'")
    return model_class


def clip_class_text(name: str) -> str:
    """The text a class name is written as in the prompts.

    Underscores become spaces (``'cell_phone'`` -> ``'cell phone'``) and
    the VOC names written as one token are split (``'diningtable'`` ->
    ``'dining table'``), as for GloVe.
    """
    return ' '.join(SPLIT_NAMES.get(name, name).replace('_', ' ').split())


def build_clip_text_model(arch_or_cfg: Union[str, dict],
                          tokenizer: Optional[str] = None):
    """Build mmpretrain's ``CLIPZeroShot`` for text embedding (random init).

    Args:
        arch_or_cfg (str | dict): A key of ``CLIP_PRESETS`` (``'ViT-B/16'``:
            E=512, ``'ViT-L/14'``: E=768), or a model config dict of type
            ``CLIPZeroShot`` (or ``CLIP``) as in mmpretrain's CLIP configs.
        tokenizer (str, optional): HuggingFace name or local directory of
            the tokenizer (``vocab.json`` + ``merges.txt``). Defaults to
            None: the one in the preset or config.

    Returns:
        CLIPZeroShot: The model in eval mode. Load weights with
        :func:`load_clip_text_weights`.

    Raises:
        InvalidInputError: If transformers is missing or of a version that
            mmpretrain 1.2 does not work with, the preset is unknown, the
            config is not a CLIP model, or the tokenizer cannot be loaded or
            does not fit the model.
    """
    model_class = _clip_model_class()
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS, TOKENIZER
    if isinstance(arch_or_cfg, str):
        if arch_or_cfg not in CLIP_PRESETS:
            raise InvalidInputError(
                f'Unknown CLIP architecture {arch_or_cfg!r}; choose one of '
                f'{sorted(CLIP_PRESETS)}, or pass a model config.')
        cfg = copy.deepcopy(CLIP_PRESETS[arch_or_cfg]['model'])
    else:
        cfg = copy.deepcopy(dict(arch_or_cfg))
        kind = str(cfg.get('type', '')).rpartition('.')[2]
        if kind not in ('CLIPZeroShot', 'CLIP'):
            raise InvalidInputError(
                f'The CLIP model config has type {cfg.get("type")!r}; it '
                'must be a CLIPZeroShot (or CLIP) model dict as in '
                "mmpretrain's configs/clip/*_zeroshot-cls_*.py.")
        # CLIP itself is not registered; CLIPZeroShot adds the prompt
        # ensemble used here.
        cfg['type'] = model_class
    lacking = [key for key in ('tokenizer', 'vocab_size') if key not in cfg]
    if lacking:
        raise InvalidInputError(
            f'The CLIP model config lacks {", ".join(lacking)}; copy them '
            "from mmpretrain's configs/clip/*_zeroshot-cls_*.py.")
    if tokenizer is not None:
        cfg['tokenizer'] = dict(cfg['tokenizer'], name_or_path=tokenizer)
    # mmpretrain's configs name its modules (e.g. QuickGELU) that mmcv
    # looks up in the default scope.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        _check_tokenizer(TOKENIZER, cfg['tokenizer'], cfg['vocab_size'])
        model = MODELS.build(cfg)
    return model.eval()


def _check_tokenizer(registry, tokenizer_cfg: dict, vocab_size: int):
    """Load the tokenizer once here, where a failure (typically: offline
    and not cached) can be reported as such rather than from inside the
    model's constructor."""
    name = tokenizer_cfg.get('name_or_path')
    try:
        tokenizer = registry.build(copy.deepcopy(tokenizer_cfg))
    except (OSError, ValueError, KeyError) as err:
        raise InvalidInputError(
            f'Cannot load the CLIP tokenizer {name!r} '
            f'({str(err).strip().rstrip(".")}). Offline, '
            'pass --tokenizer DIR with its vocab.json and merges.txt (from '
            'https://huggingface.co/openai/clip-vit-base-patch16, the same '
            'for ViT-L/14).') from None
    vocab = tokenizer.get_vocab()
    special = [
        t for t in ('<|startoftext|>', '<|endoftext|>') if t not in vocab
    ]
    if special:
        raise InvalidInputError(
            f'The tokenizer {name!r} has no {special} token: it is not a '
            'CLIP tokenizer. Give a CLIP one (tokenizer_class CLIPTokenizer).')
    if len(tokenizer) > vocab_size:
        raise InvalidInputError(
            f'The tokenizer {name!r} has {len(tokenizer)} tokens but the '
            f'CLIP model only {vocab_size} (vocab_size); use the tokenizer '
            'the text encoder was trained with.')


def download_clip_checkpoint(url: str,
                             sha256: str,
                             dst_dir: Optional[str] = None) -> str:
    """Download ``url`` unless cached, checking its sha256.

    A cached file is checked again at every use: the cache is a shared,
    writable folder, and a file there may have been replaced or damaged
    since it was downloaded.

    Args:
        url (str): The checkpoint URL.
        sha256 (str): Its expected sha256 (hex).
        dst_dir (str, optional): Cache directory. Defaults to torch hub's
            ``<torch.hub.get_dir()>/checkpoints``.

    Returns:
        str: The local path.

    Raises:
        InvalidInputError: If the download fails or the hash differs (the
            file is then not kept), or the cached file is not a readable
            file or has another sha256 (the message says to delete it).
    """
    dst_dir = dst_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    dst = osp.join(dst_dir, osp.basename(url))
    if osp.lexists(dst):
        _check_cached_checkpoint(dst, url, sha256)
        return dst
    os.makedirs(dst_dir, exist_ok=True)
    print(f'Downloading {url} to {dst}')
    try:
        torch.hub.download_url_to_file(url, dst, hash_prefix=sha256)
    except (URLError, OSError) as err:
        raise InvalidInputError(
            f'Cannot download the CLIP checkpoint {url} ({err}). Offline, '
            'download it elsewhere and pass --checkpoint PATH.') from None
    except RuntimeError as err:  # torch.hub's hash check
        raise InvalidInputError(
            f'The download of {url} does not have the published sha256 '
            f'({err}); it was not kept. Retry, or download it yourself, '
            'check it with sha256sum and pass --checkpoint PATH.') from None
    return dst


def _check_cached_checkpoint(path: str, url: str, sha256: str) -> None:
    """Raise unless the cached ``path`` is a file with the published
    sha256. It is not deleted here: it may be someone's file, put there on
    purpose; the user decides."""
    fix = (f'Delete it to download {url} again (or pass --checkpoint PATH '
           'with a copy you checked with sha256sum).')
    problem = path_problem(path)
    if problem is not None:
        raise InvalidInputError(
            f'The cached CLIP checkpoint {path} {problem}. {fix}')
    try:
        found = file_sha256(path)
    except OSError as err:
        raise InvalidInputError(
            f'Cannot read the cached CLIP checkpoint {path} '
            f'({err.strerror or err}). {fix}') from None
    if found != sha256.lower():
        raise InvalidInputError(
            f'The cached CLIP checkpoint {path} does not have the published '
            f'sha256 of {url} (it has {found}, expected {sha256}): it was '
            f'replaced or damaged after the download, and is not used. {fix}')


def _is_torchscript(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (OpenAI's ``.pt``), which
    ``torch.load(weights_only=True)`` refuses."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(
            name.split('/', 1)[-1] == 'constants.pkl'
            for name in archive.namelist())


def read_clip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The tensors of a CLIP checkpoint file.

    A TorchScript archive is read with ``torch.jit.load`` only if it is one
    of OpenAI's (its sha256 is in ``OFFICIAL_TORCHSCRIPT_SHA256``):
    ``torch.jit.load`` runs the TorchScript code an archive holds, so an
    archive from elsewhere could run anything. Anything else is read with
    ``torch.load(weights_only=True)`` (a state dict, possibly under
    ``'state_dict'``).

    Raises:
        MissingInputFileError: If ``path`` does not exist.
        InvalidInputError: If it cannot be read as either, or is a
            TorchScript archive of unknown sha256 (the message says how to
            convert it to a state dict).
    """
    if not osp.isfile(path):
        raise MissingInputFileError(
            f'CLIP checkpoint {path!r} does not exist; give the OpenAI '
            '.pt file (or mmpretrain\'s conversion of it).')
    fix = ('Give OpenAI\'s CLIP .pt file or a state dict saved with '
           'torch.save.')
    try:
        if _is_torchscript(path):
            _check_official_torchscript(path)
            with warnings.catch_warnings():
                # torch.jit is deprecated, yet it is the archive's format.
                warnings.simplefilter('ignore', FutureWarning)
                return torch.jit.load(path, map_location='cpu').state_dict()
        register_safe_checkpoint_globals()
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError,
            zipfile.BadZipFile) as err:
        raise InvalidInputError(
            f'Cannot read CLIP checkpoint {path!r} ({err}). {fix}') from None
    if isinstance(loaded, dict) and isinstance(loaded.get('state_dict'), dict):
        loaded = loaded['state_dict']
    if not isinstance(loaded, dict):
        raise InvalidInputError(
            f'CLIP checkpoint {path!r} holds a {type(loaded).__name__}, not '
            f'a state dict. {fix}')
    return loaded


def _check_official_torchscript(path: str) -> None:
    found = file_sha256(path)
    if found in OFFICIAL_TORCHSCRIPT_SHA256:
        return
    state_dict = osp.splitext(path)[0] + '_state_dict.pth'
    convert = (f'torch.save(torch.jit.load({path!r}, map_location=\'cpu\')'
               f'.state_dict(), {state_dict!r})')
    raise InvalidInputError(
        f'CLIP checkpoint {path!r} is a TorchScript archive, but not one of '
        f'OpenAI\'s (its sha256 is {found}; OpenAI\'s are those of '
        f'{", ".join(sorted(CLIP_PRESETS))}). Loading a TorchScript archive '
        'runs the code it holds, so only the known ones are loaded. Convert '
        'it to a plain state dict where you trust it, e.g. python -c '
        f'"import torch; {convert}", and '
        'pass that file.')


def load_clip_text_weights(model, checkpoint: str) -> List[str]:
    """Load the text-encoder weights of ``checkpoint`` into ``model``.

    Args:
        model (CLIPZeroShot): From :func:`build_clip_text_model`.
        checkpoint (str): Local OpenAI CLIP ``.pt`` (TorchScript) or state
            dict file (e.g. mmpretrain's conversion). Vision weights in it
            are ignored. See :func:`download_clip_checkpoint`.

    Returns:
        list[str]: The keys loaded.

    Raises:
        InvalidInputError: If the file cannot be read, or lacks a text
            weight of the model or holds one of another shape.
    """
    state = read_clip_state_dict(checkpoint)
    wanted = {
        key: value
        for key, value in model.state_dict().items()
        if key.startswith(TEXT_KEY_PREFIXES)
    }
    missing = [key for key in wanted if key not in state]
    if missing:
        hint = ''
        if any(str(key).startswith('text_model.') for key in state):
            hint = (' It looks like a HuggingFace transformers checkpoint, '
                    'whose names differ; use OpenAI\'s .pt file.')
        raise InvalidInputError(
            f'CLIP checkpoint {checkpoint!r} lacks {len(missing)} of the '
            f'{len(wanted)} text-encoder weights of the model (first: '
            f'{", ".join(missing[:3])}).{hint} Give an OpenAI CLIP checkpoint'
            ' (or mmpretrain\'s conversion of one) of the architecture '
            'chosen with --arch / --model-config.')
    wrong = [(key, _describe(state[key]), f'shape {tuple(value.shape)}')
             for key, value in wanted.items()
             if getattr(state[key], 'shape', None) != value.shape]
    if wrong:
        key, found, expected = wrong[0]
        raise InvalidInputError(
            f'CLIP checkpoint {checkpoint!r} does not fit the model: {key} '
            f'is a {found} there but a tensor of {expected} in the model '
            f'({len(wrong)} mismatched in all). Choose the --arch (ViT-B/16: '
            'width 512, ViT-L/14: 768) or --model-config of the checkpoint.')
    model.load_state_dict({key: state[key] for key in wanted}, strict=False)
    return list(wanted)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f'tensor of shape {tuple(value.shape)}'
    return type(value).__name__


def _prompts(templates: Union[str, Sequence[str]]) -> list:
    from mmpretrain.models.multimodal.clip.clip import PROMPT_MAP
    if isinstance(templates, str):
        if templates not in PROMPT_MAP:
            raise InvalidInputError(
                f'Unknown prompt template set {templates!r}; choose one of '
                f'{sorted(PROMPT_MAP)} (default {DEFAULT_TEMPLATES!r}).')
        return PROMPT_MAP[templates]
    templates = list(templates)
    bad = [t for t in templates if not isinstance(t, str) or '{}' not in t]
    if not templates or bad:
        raise InvalidInputError(
            'Prompt templates must be a set name or a non-empty list of '
            f'strings with a {{}} for the class name; got {bad or templates}.')
    return [template.format for template in templates]


def clip_class_embeddings(model,
                          names: Sequence[str],
                          templates: Union[str,
                                           Sequence[str]] = DEFAULT_TEMPLATES,
                          device: str = 'cpu') -> np.ndarray:
    """Embed each class name with CLIP's prompt ensemble.

    Args:
        model (CLIPZeroShot): Text encoder with its weights loaded.
        names (Sequence[str]): Class names in label-index order (written as
            :func:`clip_class_text` says).
        templates (str | Sequence[str]): A template set of mmpretrain's
            ``PROMPT_MAP`` (see the module docstring) or a list of format
            strings such as ``'a photo of a {}.'``. Defaults to
            ``'openai_imagenet'``.
        device (str): Where to run the encoder. Defaults to 'cpu'.

    Returns:
        np.ndarray: (C, E) float32, unit-norm rows, in the order of
        ``names``; E is the model's ``proj_dim``.

    Raises:
        InvalidInputError: For an unknown template set, no names, or a
            non-finite result or one embedding for all classes.
    """
    prompts = _prompts(templates)
    if not names:
        raise InvalidInputError('No class names to embed.')
    model.prototype = [clip_class_text(name) for name in names]
    model.prompt = prompts
    model.to(device).eval()
    with torch.no_grad():
        model.prepare_text_prototype(device)
    # prepare_text_prototype stacks classes as columns: (E, C).
    embeddings = model.text_prototype_embeds.t().float().cpu().numpy()
    bad = [
        name for name, row in zip(names, embeddings)
        if not np.isfinite(row).all()
    ]
    if bad:
        raise InvalidInputError(
            f'The CLIP embeddings of {len(bad)} classes are not finite '
            f'(e.g. {bad[0]!r}): the weights hold NaN/inf or were not '
            'loaded; check the checkpoint.')
    return check_class_embeddings(
        np.ascontiguousarray(embeddings, dtype=np.float32),
        'The CLIP class-embedding matrix',
        names,
        fix='Check that the checkpoint holds trained CLIP weights and '
        'that the class names differ.')


def read_clip_model_config(path: str) -> dict:
    """The ``model`` dict of an mmengine config file describing a CLIP."""
    from .config_files import load_config_file
    model = load_config_file(path).get('model')
    if not isinstance(model, dict):
        raise InvalidInputError(
            f'CLIP model config {path!r} has no `model` dict; it needs '
            "model = dict(type='CLIPZeroShot', ...) as in mmpretrain's "
            'configs/clip/*_zeroshot-cls_*.py.')
    return model.to_dict() if hasattr(model, 'to_dict') else dict(model)


def make_clip_embeddings(names: Sequence[str],
                         arch: str = 'ViT-B/16',
                         model_config: Optional[str] = None,
                         checkpoint: Optional[str] = None,
                         tokenizer: Optional[str] = None,
                         templates: Union[str,
                                          Sequence[str]] = DEFAULT_TEMPLATES,
                         device: str = 'cpu') -> np.ndarray:
    """Build, load and run a CLIP text encoder on ``names``: (C, E).

    Args:
        names (Sequence[str]): Class names in label-index order.
        arch (str): A key of ``CLIP_PRESETS``. Defaults to 'ViT-B/16'.
        model_config (str, optional): An mmengine config file whose
            ``model`` is a CLIPZeroShot / CLIP dict, used instead of
            ``arch``; needs ``checkpoint``.
        checkpoint (str, optional): Local weights. Defaults to None: the
            OpenAI checkpoint of ``arch``, downloaded once (sha256 checked).
        tokenizer (str, optional): Tokenizer name or directory.
        templates (str | Sequence[str]): See :func:`clip_class_embeddings`.
        device (str): Where to run the encoder. Defaults to 'cpu'.
    """
    if model_config is not None and checkpoint is None:
        raise InvalidInputError(
            'A CLIP model config needs a checkpoint: only the presets '
            f'{sorted(CLIP_PRESETS)} have a download address.')
    if checkpoint is None:
        if arch not in CLIP_PRESETS:
            raise InvalidInputError(
                f'Unknown CLIP architecture {arch!r}; choose one of '
                f'{sorted(CLIP_PRESETS)}, or pass a model config.')
        preset = CLIP_PRESETS[arch]
        checkpoint = download_clip_checkpoint(preset['url'], preset['sha256'])
    elif not osp.isfile(checkpoint):  # before building the model
        raise InvalidInputError(
            f'CLIP checkpoint {checkpoint!r} does not exist; give the OpenAI '
            'CLIP .pt file (or leave the checkpoint out to download it).')
    model_cfg = arch if model_config is None else read_clip_model_config(
        model_config)
    model = build_clip_text_model(model_cfg, tokenizer=tokenizer)
    load_clip_text_weights(model, checkpoint)
    return clip_class_embeddings(
        model, names, templates=templates, device=device)
