"""Multi-label inference on images, folders and globs."""
import contextlib
import logging
import numbers
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.apis import ImageClassificationInferencer
from mmpretrain.registry import TRANSFORMS
from mmpretrain.structures import DataSample
from rich import get_console
from rich.progress import track

from sarb_mm.evaluation.thresholds import check_thresholds, load_thresholds
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.paths import atomic_path, check_output_dir
from sarb_mm.utils.validation import check_int
from .image_paths import drawn_file_names, expand_image_paths
from .model import init_model

# Drawn images get at least this short edge, so that the labels are legible
# on small inputs (such as the 64 px demo images).
MIN_DRAWN_EDGE = 256

InputType = Union[str, os.PathLike, np.ndarray]


class MultiLabelInferencer(ImageClassificationInferencer):
    """Every label above a threshold (or the top k) of each image.

    mmpretrain's :class:`~mmpretrain.apis.ImageClassificationInferencer`
    keeps the top-1 class; this one keeps the multi-label prediction, names
    each result by its file and goes on past images that cannot be read.
    The model is built by :func:`sarb_mm.apis.init_model`, so a checkpoint
    is enough for the class names and SARB's class embeddings.

    Inputs are image paths, folders (searched recursively for
    ``IMAGE_EXTENSIONS``, in sorted order), glob patterns (``**``
    recursive; neither follows links to folders, and each image is listed
    once) or arrays (H x W x 3 BGR as OpenCV and mmcv load them, H x W
    grayscale or H x W x 4 BGRA), alone or in a list. The config's test
    pipeline resizes them: its image loader reads the paths, the rest is
    applied to every image.

    Each result is a dict with mmpretrain's keys, for every kept label:

    - ``pred_label``: the class indices, highest score first;
    - ``pred_score``: their scores;
    - ``pred_class``: their names;
    - ``pred_scores``: the score (sigmoid) of every class, a float64 array
      in class order (``None`` if the image failed);

    and:

    - ``img``: the path (``None`` for an array);
    - ``labels``: the kept labels again, each a dict
      ``{'label': name, 'index': i, 'score': s}``;
    - ``scores``: ``pred_scores`` under its earlier name;
    - ``error``: ``None``, or why the image could not be processed (it is
      also warned about; the other images are processed).

    Inputs that name nothing (a missing file or folder, a folder or pattern
    without images) are an error before any image is processed; an image
    that exists but cannot be read is an ``error`` of its result.

    Args:
        model (BaseModel | str | Config): A model from
            :func:`~sarb_mm.apis.init_model`, or a config file / object.
        pretrained (str, optional): The checkpoint, when ``model`` is a
            config. Defaults to None (weights as initialised).
        device (str | torch.device, optional): Where to run. Defaults to
            None: the model's device for a model, ``'cpu'`` otherwise.
        classes (Sequence[str], optional): Class names overriding the
            checkpoint's.
        cfg_options (dict, optional): Config overrides when ``model`` is a
            config.

    Examples:
        >>> from sarb_mm.apis import MultiLabelInferencer
        >>> inferencer = MultiLabelInferencer(
        ...     'configs/sarb_r18_demo_p10.py', 'epoch_8.pth')
        >>> result = inferencer('demo_images/', thr=0.5)[0]
        >>> result['img'], result['labels'][0]
        ('demo_images/0000.png',
         {'label': 'blue_triangle', 'index': 2, 'score': 0.97})
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'show_dir', 'resize', 'draw_score'}
    postprocess_kwargs: set = {'thr', 'topk'}

    def __init__(self,
                 model: Union[BaseModel, str, os.PathLike, Config],
                 pretrained: Optional[str] = None,
                 device: Union[str, torch.device, None] = None,
                 classes: Optional[Sequence[str]] = None,
                 cfg_options: Optional[dict] = None) -> None:
        # Not BaseInferencer.__init__: its get_model has neither the
        # checkpoint checks nor the embeddings fallback of init_model.
        if isinstance(model, torch.nn.Module):
            if pretrained is not None or cfg_options is not None:
                raise InvalidInputError(
                    'MultiLabelInferencer: pretrained and cfg_options only '
                    'apply to a config; load the checkpoint with '
                    'sarb_mm.apis.init_model(config, checkpoint) instead.')
            if not hasattr(model, '_config'):
                raise InvalidInputError(
                    'MultiLabelInferencer: the model has no config (its '
                    '_config attribute); build it with '
                    'sarb_mm.apis.init_model.')
            if device is not None:
                model.to(device)
        else:
            model = init_model(
                model,
                pretrained,
                device='cpu' if device is None else device,
                cfg_options=cfg_options)
        model.eval()
        self.model = model
        self.config = model._config
        self.loader, self.pipeline = self._init_pipeline(self.config)
        self.visualizer = None
        meta = getattr(model, 'dataset_meta', None) or getattr(
            model, '_dataset_meta', None) or {}
        self.classes = tuple(
            classes if classes is not None else meta.get('classes', ()))
        num_classes = getattr(
            getattr(model, 'head', None), 'num_classes', None)
        if num_classes is not None and len(self.classes) != num_classes:
            raise InvalidInputError(
                f'MultiLabelInferencer: {len(self.classes)} class names for '
                f'a model with {num_classes} classes.')

    def __call__(self,
                 inputs: Union[InputType, Sequence[InputType]],
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 thr: Optional[float] = None,
                 topk: Optional[int] = None,
                 show_dir: Optional[str] = None,
                 resize: Optional[int] = None,
                 draw_score: bool = True) -> list:
        """Predict the labels of every input image.

        Args:
            inputs: An image path, folder, glob pattern or array, or a list
                of them.
            return_datasamples (bool): Return mmpretrain ``DataSample``
                objects (``None`` for failed images) instead of dicts.
                Defaults to False.
            batch_size (int): Images per forward pass. Defaults to 1.
            thr (float | Sequence[float] | str, optional): Keep the labels
                scoring at least this: one threshold, one per class, or a
                thresholds file (``tools/analysis/class_thresholds.py``).
                Defaults to the head's ``thr`` (0.5 for SARB).
            topk (int, optional): Keep the ``topk`` best labels instead
                (whatever their score). Not together with ``thr``.
            show_dir (str, optional): Write each image with its predicted
                labels drawn (PNG) into this folder.
            resize (int, optional): Short edge of the drawn images.
                Defaults to the image's own, but at least 256 px.
            draw_score (bool): Draw the scores next to the labels.

        Returns:
            list: One result per image, in input order (see the class
            notes).

        Raises:
            InvalidInputError: For an unusable argument, a missing input, a
                folder without images or a glob pattern that matches
                none.
        """
        batch_size = check_int(batch_size, 'batch_size')
        thr, topk = self.resolve_selection(thr, topk)
        items = self._inputs_to_list(inputs)
        if show_dir is not None:  # before the work, not after it
            check_drawn_files(items, show_dir)
        errors: List[Optional[str]] = [None] * len(items)
        preds: List[Optional[DataSample]] = [None] * len(items)
        # A list (of paths and arrays, not images): rich's bar takes its
        # length from the sequence itself.
        batches = list(self._get_chunk_data(enumerate(items), batch_size))
        if _interactive():
            batches = track(batches, 'Inference', total=len(batches))
        for batch in batches:
            ready = []
            for index, item in batch:
                try:
                    ready.append((index, self._prepare(item)))
                except Exception as err:  # noqa: BLE001 (reported below)
                    errors[index] = _describe_failure(item, err)
                    print_log(
                        f'Skipped: {errors[index]}',
                        logger='current',
                        level=logging.WARNING)
            if not ready:
                continue
            samples = self.forward(pseudo_collate([d for _, d in ready]))
            for (index, _), sample in zip(ready, samples):
                preds[index] = sample
        for sample in preds:
            if sample is not None:
                sample.set_pred_label(self._select(sample, thr, topk))
        drawn = self.visualize(
            items,
            preds,
            show_dir=show_dir,
            resize=resize,
            draw_score=draw_score)
        if return_datasamples:
            return preds
        return self.postprocess(items, preds, errors, drawn)

    def resolve_selection(self,
                          thr: Optional[float] = None,
                          topk: Optional[int] = None
                          ) -> Tuple[Optional[float], Optional[int]]:
        """The ``(thr, topk)`` a call with these arguments uses: one of
        them is None; without either, ``thr`` is the head's (or 0.5).

        Raises:
            InvalidInputError: Both given, ``thr`` outside [0, 1] or
                ``topk`` not in 1..C.
        """
        if thr is not None and topk is not None:
            raise InvalidInputError(
                'Give either thr or topk, not both: thr keeps every label '
                'scoring at least thr, topk the k best labels.')
        num_classes = len(self.classes)
        if topk is not None:
            topk = check_int(topk, 'topk')
            if topk > num_classes:
                raise InvalidInputError(
                    f'topk={topk} is more than the {num_classes} classes.')
            return None, topk
        if thr is None:
            head = getattr(self.model, 'head', None)
            head_thr = getattr(head, 'thr', None)
            thr = 0.5 if head_thr is None else head_thr
        if isinstance(thr, (str, os.PathLike)):
            return load_thresholds(os.fspath(thr), self.classes), None
        if isinstance(thr, np.ndarray) and thr.ndim == 0:
            thr = thr.item()
        if isinstance(thr, (Sequence, np.ndarray)):
            return check_thresholds(thr, len(self.classes),
                                    'thr (per-class thresholds)'), None
        if (isinstance(thr, bool) or not isinstance(thr, numbers.Real)
                or not 0 <= thr <= 1):
            raise InvalidInputError(
                f'thr must be a number in [0, 1] (scores are sigmoids), got '
                f'{thr!r}.')
        return float(thr), None

    def _inputs_to_list(self, inputs) -> list:
        """Expand folders and globs into image paths, in input order."""
        if isinstance(inputs, (str, os.PathLike, np.ndarray)):
            inputs = [inputs]
        if not isinstance(inputs, (list, tuple)):
            raise InvalidInputError(
                f'inputs must be image paths, folders, glob patterns or '
                f'numpy arrays (or a list of them), got '
                f'{type(inputs).__name__}.')
        if not inputs:
            raise InvalidInputError('No input images were given.')
        items = []
        for item in inputs:
            if isinstance(item, np.ndarray):
                items.append(item)
            elif isinstance(item, (str, os.PathLike)):
                items += expand_image_paths([os.fspath(item)])
            else:
                raise InvalidInputError(
                    f'Input {item!r} is a {type(item).__name__}; give image '
                    'paths, folders, glob patterns or numpy arrays.')
        return items

    def _init_pipeline(self, cfg: Config) -> Tuple[Callable, Callable]:
        """The config's image loader (for paths) and the rest of its test
        pipeline (for every image, arrays included)."""
        dataset = cfg.get('test_dataloader', {}).get('dataset', {})
        steps = None
        while isinstance(dataset, dict):
            steps = dataset.get('pipeline')
            if steps is not None:
                break
            dataset = dataset.get('dataset')  # wrappers
        if steps is None:
            raise InvalidInputError(
                'The config has no test_dataloader.dataset.pipeline; '
                'inference uses the test pipeline to resize and pack the '
                'images.')
        loaders = [s for s in steps if _is_loader(s)]
        loader_cfg = dict(loaders[0]) if loaders else dict(
            type='CheckedLoadImageFromFile')
        loader = TRANSFORMS.build(loader_cfg)
        pipeline = Compose(
            [TRANSFORMS.build(s) for s in steps if not _is_loader(s)])
        return loader, pipeline

    def _prepare(self, item: Union[str, np.ndarray]) -> dict:
        """Read (paths) and transform one image; raises on failure."""
        if isinstance(item, np.ndarray):
            img = as_bgr_image(item)
            results = dict(
                img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        else:
            if not osp.exists(item):
                raise FileNotFoundError(f'Image file {item} does not exist.')
            results = self.loader(dict(img_path=item))
            if results is None:
                raise ValueError(f'Cannot read image file {item}.')
        results = self.pipeline(results)
        if results is None:
            raise ValueError('the test pipeline dropped the image')
        return results

    def _select(self, sample: DataSample, thr: Optional[float],
                topk: Optional[int]) -> torch.Tensor:
        """Indices of the kept labels, highest score first (ties: lower
        index first)."""
        scores = sample.pred_score.detach().cpu().double()
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        if topk is not None:
            kept = order[:topk]
        else:
            thr = np.broadcast_to(
                np.asarray(thr, dtype=np.float64), (len(scores), ))
            kept = [i for i in order if scores[i] >= thr[i]]
        return torch.tensor(kept, dtype=torch.long)

    def visualize(self,
                  ori_inputs: list,
                  preds: List[Optional[DataSample]],
                  show_dir: Optional[str] = None,
                  resize: Optional[int] = None,
                  draw_score: bool = True) -> List[Optional[str]]:
        """Draw the kept labels on each image with mmpretrain's
        ``UniversalVisualizer``; returns the files written."""
        if show_dir is None:
            return [None] * len(ori_inputs)
        if self.visualizer is None:
            from mmpretrain.visualization import UniversalVisualizer
            self.visualizer = UniversalVisualizer()
        check_drawn_files(ori_inputs, show_dir)
        written = []
        for item, sample, file_name in zip(ori_inputs, preds,
                                           drawn_file_names(ori_inputs)):
            if sample is None:
                written.append(None)
                continue
            if isinstance(item, np.ndarray):
                image = as_bgr_image(item)
            else:
                image = mmcv.imread(item)
            name = osp.splitext(file_name)[0]
            short = min(image.shape[:2])
            edge = resize if resize is not None else max(short, MIN_DRAWN_EDGE)
            out_file = osp.join(show_dir, file_name)
            # Renamed into place: never written through an existing link.
            with atomic_path(out_file) as tmp:
                self.visualizer.visualize_cls(
                    image[..., ::-1],  # the visualizer draws RGB
                    sample,
                    classes=self.classes,
                    resize=edge,
                    draw_gt=False,
                    draw_pred=True,
                    draw_score=draw_score,
                    name=name,
                    out_file=tmp)
            written.append(out_file)
        return written

    def postprocess(self, items: list, preds: List[Optional[DataSample]],
                    errors: List[Optional[str]],
                    drawn: List[Optional[str]]) -> List[dict]:
        """One plain dict per image (see the class notes)."""
        results = []
        for item, sample, error, out_file in zip(items, preds, errors, drawn):
            result = dict(
                img=None if isinstance(item, np.ndarray) else item,
                pred_label=[],
                pred_score=[],
                pred_class=[],
                pred_scores=None,
                labels=[],
                scores=None,
                error=error)
            if sample is not None:
                scores = sample.pred_score.detach().cpu().double().numpy()
                kept = sample.pred_label.tolist()
                result.update(
                    pred_label=kept,
                    pred_score=[float(scores[i]) for i in kept],
                    pred_class=[self.classes[i] for i in kept],
                    pred_scores=scores,
                    scores=scores,
                    labels=[
                        dict(
                            label=self.classes[i],
                            index=i,
                            score=float(scores[i])) for i in kept
                    ])
            if out_file is not None:
                result['drawn'] = out_file
            results.append(result)
        return results


def as_bgr_image(array: np.ndarray) -> np.ndarray:
    """An H x W x 3 BGR image from an H x W (grayscale), H x W x 1, x 3
    (BGR) or x 4 (BGRA) array, as the image loaders give."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return mmcv.gray2bgr(array)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[..., :3])
    raise ValueError(
        f'an image array must be H x W, H x W x 1, H x W x 3 (BGR) or '
        f'H x W x 4 (BGRA), got shape {array.shape}')


def check_drawn_files(items: Sequence, show_dir: str) -> None:
    """Create ``show_dir`` and refuse to draw over an input image.

    A drawn file is compared with the inputs by resolved path and, when it
    exists, by device and inode (a hard link, or another spelling on a
    case-insensitive file system, is the same file).

    Raises:
        InvalidInputError: ``show_dir`` is unusable, or a drawn file would
            replace one of the input images (both are named).
    """
    check_output_dir(show_dir, 'show_dir')
    by_path, by_inode = {}, {}
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            by_path[osp.realpath(os.fspath(item))] = item
            with contextlib.suppress(OSError):
                info = os.stat(item)
                by_inode[(info.st_dev, info.st_ino)] = item
    for file_name in drawn_file_names(items):
        out_file = osp.join(show_dir, file_name)
        replaced = by_path.get(osp.realpath(out_file))
        if replaced is None and by_inode:
            with contextlib.suppress(OSError):
                info = os.stat(out_file)
                replaced = by_inode.get((info.st_dev, info.st_ino))
        if replaced is not None:
            raise InvalidInputError(
                f'show_dir {show_dir}: the drawn image {out_file} would '
                f'overwrite the input image {replaced}; choose a show_dir '
                'that is not the folder of the input images.')


def _interactive() -> bool:
    """Whether a rich progress bar can redraw itself; in a log file or
    pipe it would only leave its last state glued to the next line.

    (rich's own ``track``, not mmpretrain's: with the rich release
    installed here, mmpretrain's never advances and keeps redrawing after
    the loop.)
    """
    console = get_console()
    return console.is_terminal or console.is_jupyter


def _is_loader(step) -> bool:
    step_type = step.get('type') if isinstance(step, dict) else None
    name = step_type if isinstance(step_type, str) else getattr(
        step_type, '__name__', '')
    return name.endswith('LoadImageFromFile')


def _describe_failure(item, err: Exception) -> str:
    message = str(err).strip() or type(err).__name__
    if isinstance(item, np.ndarray):
        return f'Cannot use the image array of shape {item.shape}: {message}.'
    if str(item) in message:
        return message
    return f'Cannot process image {item}: {message}.'
