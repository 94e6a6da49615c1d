"""Image loading that names the offending file and cannot hang or blow up.

A dataset lists its images by name, and a name can point at anything: a
FIFO (reading it blocks the data loader forever), a device such as
``/dev/zero`` (read until memory runs out), or a small compressed file whose
header declares a gigantic image (OpenCV decodes up to 2**30 pixels, several
GB of memory and tens of seconds each). :class:`CheckedLoadImageFromFile`
refuses those before reading or decoding them.
"""
import io
import os
import re
import stat
import sys
import warnings
from typing import Optional, Tuple

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
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
    limit is checked on the fetched bytes.

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
        data = backend.get(path)
        self._check_size(len(data), path)
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
