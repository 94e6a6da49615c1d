"""SARB's category attention for one image, ready to be drawn.

SARB's neck (:class:`~sarb_mm.models.necks.SemanticDecouplingNeck`) pools
one feature per class with a softmax attention over the positions of the
last backbone feature map. :func:`class_attention` runs a model on one image
and returns those maps for chosen classes, with the model's scores;
:func:`sarb_mm.visualization.attention.plot_class_attention` draws them.
"""
import os
import os.path as osp
from typing import List, NamedTuple, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, TRANSFORMS

from sarb_mm.models.necks.semantic_decoupling import SemanticDecouplingNeck
from sarb_mm.utils.errors import InvalidInputError, MissingInputFileError
from sarb_mm.utils.validation import check_int

# Classes shown when neither ``classes`` nor ``topk`` is given.
DEFAULT_TOPK = 3


class ClassAttention(NamedTuple):
    """What :func:`class_attention` returns.

    Attributes:
        image (np.ndarray): The image the model received, (H, W, 3) uint8
            RGB: after the config's test pipeline (resize, crop), before
            normalisation. The maps cover exactly this image.
        maps (np.ndarray): Attention (K, h, w) float32 over the h x w
            feature-map positions, one map per chosen class; each is
            non-negative and sums to 1.
        classes (list[str]): The K class names, in the order of ``maps``.
        scores (np.ndarray): The model's scores (K,) for those classes,
            as in its ``pred_score`` (sigmoid probabilities for SARB).
        indices (np.ndarray): The K class indices.
    """
    image: np.ndarray
    maps: np.ndarray
    classes: List[str]
    scores: np.ndarray
    indices: np.ndarray


def class_attention(model: nn.Module,
                    image: Union[str, os.PathLike, np.ndarray],
                    classes: Optional[Sequence[str]] = None,
                    topk: Optional[int] = None) -> ClassAttention:
    """Category attention maps and scores of a SARB model for one image.

    The image goes through the test pipeline of ``model.cfg`` (as in
    ``tools/test.py``), the model's data preprocessor and backbone; the
    maps are :meth:`SemanticDecouplingNeck.attention_maps` of that
    backbone output and the scores the head's prediction from it, so both
    are what ``model.test_step`` computes.

    Args:
        model (nn.Module): A SARB classifier in eval mode with ``cfg`` and,
            for class names, ``dataset_meta['classes']``, e.g. from
            :func:`sarb_mm.apis.model.init_model`. Without class names the
            classes are called '0', '1', ...
        image (str | PathLike | np.ndarray): An image file, or a decoded
            image as ``mmcv.imread`` returns it: (H, W, 3) BGR or (H, W)
            grayscale, uint8 (the convention of mmpretrain's inferencers).
        classes (Sequence[str], optional): Names of the classes to show, in
            this order (repeats are dropped).
        topk (int, optional): Show the ``topk`` highest-scoring classes
            instead, best first. When neither is given, the top 3 (or all
            classes, if fewer).

    Returns:
        ClassAttention: The image, maps, class names, scores and indices.

    Raises:
        InvalidInputError: The model has no SemanticDecouplingNeck (e.g. a
            baseline config), a class name is unknown (the message lists
            the valid ones), both or bad ``classes``/``topk``, or the image
            is missing or unreadable.
    """
    neck = getattr(model, 'neck', None)
    if not isinstance(neck, SemanticDecouplingNeck):
        raise InvalidInputError(
            _not_sarb('this model has ' +
                      ('no neck' if neck is None else type(neck).__name__)))
    names = _class_names(model, neck.num_classes)
    if classes is not None and topk is not None:
        raise InvalidInputError(
            'Give either classes or topk, not both: classes picks classes '
            'by name, topk the highest-scoring ones.')
    wanted = None if classes is None else _class_indices(classes, names)
    if wanted is None:
        topk = DEFAULT_TOPK if topk is None else check_int(topk, 'topk')
        topk = min(topk, len(names))

    data = _run_pipeline(model, image)
    shown = _shown_image(model, data['inputs'][0])
    data = model.data_preprocessor(data, False)
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'], stage='backbone')
        maps = neck.attention_maps(feats)[0]
        sample = model.head.predict(neck(feats), data['data_samples'])[0]
    scores = sample.pred_score.float().cpu()
    if wanted is None:
        # A stable sort keeps ties in class order.
        order = torch.sort(scores, descending=True, stable=True).indices
        wanted = order[:topk].tolist()
    index = torch.tensor(wanted, dtype=torch.long)
    return ClassAttention(
        image=shown,
        maps=maps.cpu()[index].numpy(),
        classes=[names[i] for i in wanted],
        scores=scores[index].numpy(),
        indices=index.numpy())


def check_attention_config(cfg: Config) -> None:
    """Refuse a config whose model has no category attention.

    Checks ``cfg.model.neck`` without building anything, so that a tool can
    fail before it reads a checkpoint.

    Raises:
        InvalidInputError: The neck is not a SemanticDecouplingNeck (or a
            subclass), e.g. for a baseline config.
    """
    neck = (cfg.get('model') or {}).get('neck')
    neck_type = neck.get('type') if isinstance(neck, dict) else None
    if isinstance(neck_type, str):
        with DefaultScope.overwrite_default_scope(
                cfg.get('default_scope', 'mmpretrain')):
            neck_class = MODELS.get(neck_type)
    else:
        neck_class = neck_type
    if not (isinstance(neck_class, type)
            and issubclass(neck_class, SemanticDecouplingNeck)):
        name = getattr(neck_type, '__name__', neck_type)
        found = ('no model.neck'
                 if neck_type is None else f'model.neck type {name}')
        raise InvalidInputError(
            _not_sarb(f'config {cfg.filename or "(Config object)"} has '
                      f'{found}'))


def _not_sarb(found: str) -> str:
    return (
        'Attention maps need a model whose neck is a SemanticDecouplingNeck '
        f'(SARB, SST, HST, DSRB), but {found}. Use such a config (e.g. '
        'configs/sarb_r18_demo_p10.py) and its checkpoint; baseline configs '
        'have no category attention.')


def _class_names(model: nn.Module, num_classes: int) -> List[str]:
    meta = getattr(model, 'dataset_meta', None) or {}
    names = meta.get('classes')
    if names is None:
        return [str(i) for i in range(num_classes)]
    names = [str(name) for name in names]
    if len(names) != num_classes:
        raise InvalidInputError(
            f'The model has {num_classes} classes but its dataset_meta '
            f'names {len(names)}. The checkpoint does not belong to this '
            'config: check the pair, or the num_classes of the config.')
    return names


def _class_indices(classes: Sequence[str], names: List[str]) -> List[int]:
    if isinstance(classes, str):
        classes = [classes]
    if len(classes) == 0:
        raise InvalidInputError(
            'classes is empty: name at least one class, or use topk.')
    lookup = {name: i for i, name in enumerate(names)}
    unknown = [str(name) for name in classes if name not in lookup]
    if unknown:
        raise InvalidInputError(
            f'Unknown class name(s) {", ".join(map(repr, unknown))}. The '
            f'model\'s classes are: {", ".join(names)}.')
    return list(dict.fromkeys(lookup[name] for name in classes))


def _test_pipeline(model: nn.Module) -> list:
    cfg = getattr(model, 'cfg', None)
    dataset = None
    if cfg is not None:
        dataset = (cfg.get('test_dataloader') or {}).get('dataset')
    # Dataset wrappers keep the pipeline on the wrapped dataset.
    while isinstance(dataset, dict) and 'pipeline' not in dataset:
        dataset = dataset.get('dataset')
    if cfg is not None and dataset is None and 'test_pipeline' in cfg:
        return list(cfg.test_pipeline)
    if dataset is None:
        raise InvalidInputError(
            'The model has no test pipeline: its cfg needs '
            'test_dataloader.dataset.pipeline. Build it with '
            'sarb_mm.apis.model.init_model from a full config.')
    return list(dataset['pipeline'])


def _run_pipeline(model: nn.Module, image: Union[str, os.PathLike,
                                                 np.ndarray]) -> dict:
    steps = _test_pipeline(model)
    if isinstance(image, np.ndarray):
        results = dict(img=_checked_array(image))
        results['img_shape'] = results['ori_shape'] = image.shape[:2]
        # A decoded image skips the config's file loader.
        steps = [
            step for step in steps
            if not str(step.get('type', '')).endswith('LoadImageFromFile')
        ]
    elif isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not osp.isfile(path):
            raise MissingInputFileError(
                f'Image file {path} does not exist (or is not a file).')
        results = dict(img_path=path)
    else:
        raise InvalidInputError(
            'image must be an image file path or a decoded (H, W, 3) '
            f'array, got {type(image).__name__}.')
    pipeline = Compose([TRANSFORMS.build(step) for step in steps])
    try:
        results = pipeline(results)
    except (OSError, ValueError) as err:
        if isinstance(err, InvalidInputError):
            raise
        raise InvalidInputError(f'Cannot use image {image!r}: {err}') from err
    if results is None:
        raise InvalidInputError(
            f'The test pipeline dropped image {image!r} (it could not be '
            'read).')
    return default_collate([results])


def _checked_array(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = mmcv.gray2bgr(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(
            'An image array must be uint8 of shape (H, W, 3) (BGR, as '
            'mmcv.imread returns) or (H, W), got '
            f'{image.dtype} {tuple(image.shape)}.')
    return image


def _shown_image(model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """The packed (3, H, W) pipeline output as (H, W, 3) uint8 RGB."""
    image = inputs.detach().cpu().float().clamp(0, 255).round()
    image = image.to(torch.uint8).permute(1, 2, 0).numpy()
    # mmcv decodes to BGR; the data preprocessor's to_rgb swaps to RGB.
    if getattr(model.data_preprocessor, 'to_rgb', False):
        image = image[..., ::-1]
    return np.ascontiguousarray(image)
