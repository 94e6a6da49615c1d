"""Image loading that names the offending file and cannot hang or blow up,
and augmentation draws that depend on the sample, not on the worker.

A dataset lists its images by name, and a name can point at anything: a
FIFO (reading it blocks the data loader forever), a device such as
``/dev/zero`` (read until memory runs out), or a small compressed file whose
header declares a gigantic image (OpenCV decodes up to 2**30 pixels, several
GB of memory and tens of seconds each). :class:`CheckedLoadImageFromFile`
refuses those before reading or decoding them.

:class:`SeedFromSample` seeds the random transforms after it from (seed,
epoch, sample index), so a resumed run repeats the uninterrupted run's
augmentations whichever worker loads a sample.
"""
import io
import os
import random
import re
import stat
import sys
import urllib.error
import urllib.request
import warnings
from typing import Optional, Tuple

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS
from PIL import Image

# Pillow's default ``Image.MAX_IMAGE_PIXELS`` (about 9459 x 9459 px, 268 MB
# decoded as 8-bit colour); a literal because that global may be changed or
# set to None by other code.
DEFAULT_MAX_PIXELS = 89_478_485
# Photographs compress to a few MB; only an uncompressed image of about
# max_pixels comes near this. Small enough to stop a runaway read early.
DEFAULT_MAX_FILE_SIZE = 256 * 1024**2

# A stalled server must not block a data loader worker forever.
HTTP_TIMEOUT_SECONDS = 60

_KINDS = ((stat.S_ISDIR, 'directory'), (stat.S_ISFIFO, 'FIFO (named pipe)'),
          (stat.S_ISCHR, 'character device'), (stat.S_ISBLK, 'block device'),
          (stat.S_ISSOCK, 'socket'))


class ImageFileError(ValueError):
    """An image file that is refused before it is read or decoded."""


def _check_limit(value, name: str) -> Optional[int]:
    if value is None:
        return None
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or value < 1):
        raise ValueError(
            f'CheckedLoadImageFromFile: {name} must be a positive integer '
            f'or None (no limit), but got {value!r}.')
    return int(value)


# Also replaces mmcv's loader under its own name in the mmpretrain scope:
# mmpretrain's tools find the image loader of a pipeline by that exact name
# (verify_dataset.py keeps only it), so the configs say 'LoadImageFromFile'
# and still get these checks.
@TRANSFORMS.register_module(
    name=['CheckedLoadImageFromFile', 'LoadImageFromFile'], force=True)
class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that checks a file before reading it.

    With the local file backend (the default), the image path must name a
    regular file (symbolic links to one are followed): a directory, FIFO,
    device or socket is refused without being opened for reading, so a
    listed path can neither block the loader nor stream endlessly. Files
    larger than ``max_file_size`` are refused before they are read. With
    any other backend (chosen by ``backend_args`` or by a URL prefix such as
    ``s3://`` in ``data_root``) those local checks do not apply and the size
    limit is checked on the fetched bytes; over HTTP(S) the download itself
    stops after ``max_file_size`` bytes (or at once, from the declared
    ``Content-Length``), a 404 is a missing image, and a server that stalls
    for ``HTTP_TIMEOUT_SECONDS`` is an error naming the URL.

    Before decoding, the image header is read with Pillow and an image that
    declares more than ``max_pixels`` pixels is refused, for every backend.
    A file whose header Pillow cannot read is reported as undecodable (set
    ``max_pixels=None`` to decode formats that only OpenCV knows, e.g.
    OpenEXR). Pillow itself refuses headers above twice
    ``PIL.Image.MAX_IMAGE_PIXELS`` while reading them, so a larger
    ``max_pixels`` only helps together with a larger Pillow limit.

    Every failure names the file. Grayscale, CMYK, palette and RGBA images
    are converted to three colour channels by the decoder, as before. A
    result that already holds a decoded ``img`` and no path passes through.
    With ``ignore_empty=True`` a missing or undecodable file gives ``None``
    (as in mmcv), but a refused file (not regular, too large, too many
    pixels) still raises, because it is never a harmless gap in a dataset.

    Once ``sarb_mm`` is imported (every sarb_mm config imports it through
    ``custom_imports``), ``dict(type='LoadImageFromFile')`` in the mmpretrain
    scope builds this class instead of mmcv's, so that mmpretrain's tools
    recognise the loader of our pipelines. Its defaults accept every image
    that mmcv's loader reads except those refused above. mmcv's unchecked
    loader stays available as ``dict(type='mmengine.LoadImageFromFile')``.

    Args:
        max_file_size (int, optional): Largest file size in bytes that is
            read. Defaults to 256 MiB (268,435,456 bytes). None disables it.
        max_pixels (int, optional): Largest ``width * height`` declared by
            the header that is decoded. Defaults to 89,478,485, Pillow's
            default ``MAX_IMAGE_PIXELS``. None disables the header check.
        **kwargs: Arguments of :class:`mmcv.transforms.LoadImageFromFile`
            (``to_float32``, ``color_type``, ``imdecode_backend``,
            ``ignore_empty``, ``backend_args``, ...).
    """

    def __init__(self,
                 *args,
                 max_file_size: Optional[int] = DEFAULT_MAX_FILE_SIZE,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_file_size = _check_limit(max_file_size, 'max_file_size')
        self.max_pixels = _check_limit(max_pixels, 'max_pixels')

    def transform(self, results: dict) -> Optional[dict]:
        """Read, check and decode ``results['img_path']``."""
        if 'img_path' not in results and 'img' in results:
            return results  # decoded already (e.g. mmpretrain's inferencer)
        path = results['img_path']
        try:
            img_bytes = self._read(path)
        except FileNotFoundError:
            if self.ignore_empty:
                return None
            raise FileNotFoundError(
                f'Image file {path} does not exist, but the annotations '
                'list it. Check data_root / data_prefix, or restore the '
                'file.') from None
        try:
            self._check_pixels(img_bytes, path)
            img = mmcv.imfrombytes(
                img_bytes, flag=self.color_type, backend=self.imdecode_backend)
            if img is None:
                raise ValueError('the decoder returned no image')
        except ImageFileError:
            raise
        except Exception as err:
            if self.ignore_empty:
                return None
            raise ValueError(
                f'Cannot decode image file {path} ({type(err).__name__}: '
                f'{str(err).strip()}). It is empty, truncated or not an '
                'image: replace it, or remove it from the annotations.'
            ) from err
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, max_file_size='
                f'{self.max_file_size}, max_pixels={self.max_pixels})')

    def _read(self, path) -> bytes:
        """Return the bytes of ``path``; local files are checked first."""
        try:
            if self.file_client_args is not None:
                backend = fileio.FileClient.infer_client(
                    self.file_client_args, path).client
            else:
                backend = fileio.get_file_backend(
                    path,
                    backend_args=self.backend_args,
                    enable_singleton=True)
        except (KeyError, ValueError) as err:
            raise ImageFileError(
                f'No file backend can read image path {path} ({err!r}); '
                "mmengine takes the text before '://' in a path as a "
                'storage prefix. Rename the file, or fix data_root / '
                'backend_args.') from None
        if isinstance(backend, (fileio.LocalBackend, fileio.HardDiskBackend)):
            return self._read_local(os.fspath(path))
        if isinstance(backend, fileio.HTTPBackend):
            return self._read_http(str(path))
        try:
            data = backend.get(path)
        except FileNotFoundError:
            raise FileNotFoundError(path) from None
        self._check_size(len(data), path)
        return data

    def _read_http(self, url: str) -> bytes:
        """Fetch ``url`` reading at most ``max_file_size + 1`` bytes
        (mmengine's ``HTTPBackend`` reads whatever the server sends)."""
        limit = self.max_file_size
        try:
            with urllib.request.urlopen(
                    url, timeout=HTTP_TIMEOUT_SECONDS) as response:
                declared = response.headers.get('Content-Length')
                if declared and declared.isdigit():
                    self._check_size(int(declared), url)
                data = response.read(None if limit is None else limit + 1)
        except urllib.error.HTTPError as err:
            if err.code in (404, 410):
                raise FileNotFoundError(url) from None
            raise ImageFileError(
                f'Cannot fetch image {url}: the server answered HTTP '
                f'{err.code} ({err.reason}). Check the URL and the '
                'server.') from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, 'reason', err)
            raise ImageFileError(
                f'Cannot fetch image {url} ({reason}). Check data_root / '
                'data_prefix and that the server is reachable.') from None
        self._check_size(len(data), url, grew=True)
        return data

    def _read_local(self, path: str) -> bytes:
        try:
            info = os.stat(path)  # follows symbolic links
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(path) from None
        except (OSError, ValueError) as err:
            raise ImageFileError(
                f'Cannot access image file {path} ({err}). Fix its '
                'permissions, or remove it from the annotations.') from None
        self._check_regular(info, path)
        self._check_size(info.st_size, path)
        # O_NONBLOCK: should the path have been swapped for a FIFO since
        # the stat above, opening it must not block; fstat checks again.
        flags = os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(
            os, 'O_BINARY', 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise FileNotFoundError(path) from None
        except OSError as err:
            raise ImageFileError(
                f'Cannot open image file {path} ({err}). Fix its '
                'permissions, or remove it from the annotations.') from None
        try:
            with os.fdopen(fd, 'rb') as f:
                info = os.fstat(f.fileno())
                self._check_regular(info, path)
                # Ask for what stat reported (plus one byte, to notice a
                # file that grew since): never a limit-sized buffer.
                limit = self.max_file_size
                want = info.st_size + 1
                if limit is not None:
                    want = min(want, limit + 1)
                data = f.read(want)
                if len(data) == want:  # grew while being read
                    data += f.read(None if limit is None else limit + 1 -
                                   len(data))
        except OSError as err:
            raise ImageFileError(
                f'Cannot read image file {path} ({err}). Restore the file, '
                'or remove it from the annotations.') from None
        self._check_size(len(data), path, grew=True)
        return data

    @staticmethod
    def _check_regular(info: os.stat_result, path: str) -> None:
        if stat.S_ISREG(info.st_mode):
            return
        kind = next((name for test, name in _KINDS if test(info.st_mode)),
                    'special file')
        link = ''
        if os.path.islink(path):
            link = f', reached through a symbolic link to ' \
                   f'{os.path.realpath(path)}'
        raise ImageFileError(
            f'Image file {path} is not a regular file but a {kind}{link}. '
            'Only regular files are read, because a FIFO or device can '
            'block the data loader or never end; point the annotations at '
            'the image file itself.')

    def _check_size(self, size: int, path: str, grew: bool = False) -> None:
        if self.max_file_size is not None and size > self.max_file_size:
            amount = f'{size} bytes{" or more" if grew else ""}'
            raise ImageFileError(
                f'Image file {path} ({amount}) is larger than max_file_size='
                f'{self.max_file_size} bytes of CheckedLoadImageFromFile. '
                'Check the file; if it is a '
                'genuine image, raise max_file_size in the pipeline (or set '
                'it to None).')

    def _check_pixels(self, data: bytes, path) -> None:
        """Refuse an image whose header declares more than ``max_pixels``.

        Raises :class:`ImageFileError` for too many pixels, and
        ``ValueError`` (an undecodable file) for an unreadable header.
        """
        if self.max_pixels is None:
            return
        size = _declared_size(data)
        if size is None:
            raise ValueError('Pillow cannot read its header; for a format '
                             'that only OpenCV reads, set max_pixels=None')
        if isinstance(size, int):  # Pillow refused it, with this count
            count, shape = size, ''
            if count <= self.max_pixels:
                raise ImageFileError(
                    f'Image file {path} declares {count} pixels, more than '
                    'twice PIL.Image.MAX_IMAGE_PIXELS, so Pillow refuses to '
                    'read its header. Raise PIL.Image.MAX_IMAGE_PIXELS '
                    'together with max_pixels of CheckedLoadImageFromFile, '
                    'or downscale the image.')
        else:
            count, shape = size[0] * size[1], f'{size[0]} x {size[1]} = '
        if count > self.max_pixels:
            raise ImageFileError(
                f'Image file {path} declares {shape}{count} pixels, more '
                f'than max_pixels={self.max_pixels} of '
                'CheckedLoadImageFromFile, so it is not decoded (that would '
                f'take {_bytes(count * 3)} of memory). Downscale '
                'or replace the image, or raise max_pixels in the pipeline '
                'if such images are intended.')


def _bytes(num: int) -> str:
    if num < 1000:
        return f'{num} bytes'
    for unit in ('KB', 'MB', 'GB'):
        num /= 1000
        if num < 1000 or unit == 'GB':
            return f'{num:.1f} {unit}'


def _declared_size(data: bytes):
    """Width and height from the header (Pillow reads no pixel data).

    Returns None if Pillow cannot read the header, or the pixel count if
    Pillow refused the header as a decompression bomb.
    """
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                size: Tuple[int, int] = img.size
                return size
        except Image.DecompressionBombError as err:
            # Pillow's message is the only place that carries the size.
            found = re.search(r'\((\d+) pixels\)', str(err))
            return int(found.group(1)) if found else sys.maxsize
        except Exception:
            return None


# numpy SeedSequence spawn keys that keep the seed streams of sarb_mm apart
# (hashing (seed, epoch, idx) alone would collide with (seed, epoch, rank)).
SAMPLE_STREAM = 1


def sample_seed(seed: int, epoch: int, sample_idx: int) -> int:
    """An independent 32-bit seed for each (seed, epoch, sample index)."""
    sequence = np.random.SeedSequence([seed, epoch],
                                      spawn_key=(SAMPLE_STREAM, sample_idx))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


@TRANSFORMS.register_module()
class SeedFromSample(BaseTransform):
    """Seed python, numpy and torch from (seed, epoch, sample index).

    Put it first in the training pipeline: the random transforms after it
    (crops, flips, ...) then draw from a stream that depends on the sample
    and the epoch only, not on which dataloader worker loads the sample nor
    on what that worker loaded before. That is what lets a run resumed from
    a checkpoint saved in the middle of an epoch (which starts its workers
    at the next batch, so every worker gets other batches than in the
    uninterrupted run) augment every remaining image as the uninterrupted
    run does; it also makes the augmentations independent of the number of
    workers.

    ``EpochSeedHook`` sets :attr:`seed` (the run's ``randomness.seed``) and
    :attr:`epoch` before every training epoch, in the main process before
    the workers start, which is why it needs ``persistent_workers=False``.
    Until then (browsing a dataset, a pipeline used outside training) the
    transform does nothing and the draws come from the current streams.

    It seeds the global streams, so with ``num_workers=0`` it resets those
    of the main process too; ``EpochSeedHook`` reseeds them before every
    iteration, so the model's draws do not depend on the images loaded.

    The key is ``results['sample_idx']``, the index of the image in the
    dataset it comes from; a dataset repeated within an epoch
    (``RepeatDataset``) would augment the copies of an image alike.

    Required Keys:

    - sample_idx
    """

    def __init__(self) -> None:
        self.seed: Optional[int] = None
        self.epoch: Optional[int] = None

    def transform(self, results: dict) -> dict:
        if self.seed is None or self.epoch is None:
            return results
        if 'sample_idx' not in results:
            raise KeyError(
                'SeedFromSample needs the sample index (results["sample_idx"]'
                ', which mmengine datasets add); the dataset '
                f'gave only {sorted(results)}. Remove SeedFromSample from '
                'train_dataloader.dataset.pipeline for this dataset.')
        seed = sample_seed(self.seed, self.epoch, int(results['sample_idx']))
        random.seed(seed)
        np.random.seed(seed)
        # The CPU generator only: transforms run on the CPU, and the main
        # process's CUDA streams (num_workers=0) are not theirs to reset.
        torch.default_generator.manual_seed(seed)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(seed={self.seed}, ' \
            f'epoch={self.epoch})'
