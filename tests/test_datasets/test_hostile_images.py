"""Broken or unusual image files: a clear error naming the file, or a
documented conversion to 3-channel colour; files that would hang the loader
or exhaust memory are refused before they are read or decoded."""
import contextlib
import io
import os
import os.path as osp
import re
import signal
import struct
import time
import zlib

import numpy as np
import pytest
from mmengine.fileio import BaseStorageBackend, register_backend
from PIL import Image

from sarb_mm.datasets import PartialLabelDataset
from .fixtures import COCO_IMAGES, write_coco

PIPELINE = [dict(type='CheckedLoadImageFromFile'), dict(type='PackInputs')]


def _dataset(root, wrap):
    cfg = dict(
        type='CocoMultiLabelDataset',
        data_root=str(root),
        ann_file='annotations/instances_train2014.json',
        data_prefix='train2014',
        pipeline=PIPELINE)
    if wrap:
        return PartialLabelDataset(cfg, known_ratio=1.0)
    from mmpretrain.registry import DATASETS
    return DATASETS.build(cfg)


def _image_path(root, index=0):
    return osp.join(root, 'train2014', COCO_IMAGES[index]['file_name'])


def _rich_jpeg(path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        path, format='JPEG')


@pytest.mark.parametrize('damage', ['head', 'tail', 'garbage', 'empty'])
@pytest.mark.parametrize('wrap', [True, False])
def test_corrupt_or_truncated_jpeg_names_the_file(tmp_path, damage, wrap):
    write_coco(str(tmp_path))
    path = _image_path(str(tmp_path))
    _rich_jpeg(path)
    data = open(path, 'rb').read()
    broken = dict(
        head=data[:len(data) // 3],
        tail=data[:int(len(data) * .8)],
        garbage=b'this is not a jpeg',
        empty=b'')[damage]
    with open(path, 'wb') as f:
        f.write(broken)
    dataset = _dataset(tmp_path, wrap)
    with pytest.raises(
            ValueError,
            match='Cannot decode image file .*' + COCO_IMAGES[0]['file_name']):
        dataset[0]
    assert dataset[1]['inputs'].shape[0] == 3  # the others still load


@pytest.mark.parametrize('wrap', [True, False])
def test_missing_image_names_the_file(tmp_path, wrap):
    write_coco(str(tmp_path))
    os.remove(_image_path(str(tmp_path), 2))
    with pytest.raises(FileNotFoundError, match=COCO_IMAGES[2]['file_name']):
        _dataset(tmp_path, wrap)[2]


@pytest.mark.parametrize('mode, ext', [('L', 'JPEG'), ('CMYK', 'JPEG'),
                                       ('RGBA', 'PNG'), ('P', 'PNG'),
                                       ('I;16', 'PNG')])
def test_other_colour_modes_become_three_channels(tmp_path, mode, ext):
    write_coco(str(tmp_path))
    path = _image_path(str(tmp_path))
    rgb = Image.new('RGB', (10, 6), (200, 120, 40))
    image = rgb.convert('L').convert('I;16') if mode == 'I;16' else \
        rgb.convert(mode)
    image.save(path, format=ext)  # COCO names files .jpg whatever they hold
    inputs = _dataset(tmp_path, wrap=True)[0]['inputs']
    assert inputs.shape == (3, 6, 10)
    if mode in ('L', 'I;16'):
        assert (inputs[0] == inputs[1]).all()
        assert (inputs[1] == inputs[2]).all()


# --------------------------------------------------------------------------
# Files that must never hang a run or exhaust its memory
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _deadline(seconds):
    """Fail (instead of hanging) if the block runs longer than ``seconds``.

    SIGALRM interrupts a blocking ``open`` of a FIFO, so a regression makes
    the test fail with TimeoutError rather than stall the suite.
    """

    def fail(signum, frame):
        raise TimeoutError(f'still running after {seconds} s')

    if not hasattr(signal, 'SIGALRM'):  # Windows: no guard
        yield
        return
    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _address_space_cap(extra_bytes):
    """Let the process map at most ``extra_bytes`` more memory meanwhile.

    An endless read (of ``/dev/zero``) then ends in MemoryError instead of
    exhausting the machine's memory.
    """
    import resource  # POSIX only, like the tests that use this
    with open('/proc/self/status') as f:
        used = next(
            int(line.split()[1]) * 1024 for line in f
            if line.startswith('VmSize:'))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = used + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _replace_image(root, make):
    """Replace the first image of the fixture by what ``make(path)`` makes."""
    write_coco(str(root))
    path = _image_path(str(root))
    os.remove(path)
    make(path)
    return path


def _build_loader(**kwargs):
    from mmpretrain.registry import TRANSFORMS
    return TRANSFORMS.build(dict(type='CheckedLoadImageFromFile', **kwargs))


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs os.mkfifo')
@pytest.mark.parametrize('wrap', [True, False])
def test_fifo_is_refused_without_blocking(tmp_path, wrap):
    path = _replace_image(tmp_path, os.mkfifo)
    dataset = _dataset(tmp_path, wrap)
    with _deadline(20), pytest.raises(
            ValueError,
            match=re.escape(path) + '.*not a regular file but '
            'a FIFO'):
        dataset[0]
    assert dataset[1]['inputs'].shape[0] == 3


@pytest.mark.skipif(
    not (os.path.exists('/dev/zero') and os.path.exists('/proc/self/status')),
    reason='needs /dev/zero and /proc')
def test_symlink_to_dev_zero_is_refused_without_reading(tmp_path):
    path = _replace_image(tmp_path, lambda p: os.symlink('/dev/zero', p))
    dataset = _dataset(tmp_path, wrap=True)
    with _deadline(20), _address_space_cap(1024**3), pytest.raises(
            ValueError,
            match=re.escape(path) + '.*character device, '
            'reached through a symbolic link to /dev/zero'):
        dataset[0]


def test_directory_is_refused(tmp_path):
    path = _replace_image(tmp_path, os.mkdir)
    with pytest.raises(
            ValueError,
            match=re.escape(path) + '.*not a regular file but '
            'a directory'):
        _dataset(tmp_path, wrap=False)[0]


def _png_declaring(path, width, height):
    """A valid 8 x 8 PNG whose IHDR (and its CRC) is patched to declare
    ``width`` x ``height``: a few hundred bytes that OpenCV would allocate
    ``width * height * 3`` bytes for."""
    _image_declaring(path, width, height, 'PNG')


def _image_declaring(path, width, height, fmt):
    """A small ``fmt`` image whose header declares ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new('RGB' if fmt != 'GIF' else 'P', (8, 8)).save(buffer, format=fmt)
    data = bytearray(buffer.getvalue())
    if fmt == 'PNG':
        assert data[12:16] == b'IHDR'
        data[16:24] = struct.pack('>II', width, height)
        data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    elif fmt == 'JPEG':
        sof = data.index(b'\xff\xc0')  # baseline start-of-frame
        data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    elif fmt == 'BMP':
        data[18:26] = struct.pack('<ii', width, height)
    elif fmt == 'GIF':
        data[6:10] = struct.pack('<HH', width, height)
    with open(path, 'wb') as f:
        f.write(bytes(data))
    return bytes(data)


@pytest.mark.parametrize('fmt', ['PNG', 'JPEG', 'BMP', 'GIF'])
def test_header_declaring_huge_size_is_refused_before_decoding(tmp_path, fmt):
    path = _replace_image(tmp_path,
                          lambda p: _image_declaring(p, 30000, 30000, fmt))
    assert os.path.getsize(path) < 1000
    dataset = _dataset(tmp_path, wrap=True)
    start = time.perf_counter()
    with _deadline(20), pytest.raises(
            ValueError,
            match=re.escape(path) + r'.*declares 900000000 '
            r'pixels, more than max_pixels=89478485.*2\.7 GB'):
        dataset[0]
    assert time.perf_counter() - start < 5


def test_pixel_cap_is_configurable(tmp_path):
    # Within twice Pillow's own limit the message gives the dimensions.
    path = str(tmp_path / 'wide.png')
    _png_declaring(path, 12000, 10000)
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r'.*declares 12000 x 10000 '
            r'= 120000000 pixels, more than max_pixels'):
        _build_loader()(dict(img_path=path))

    path = str(tmp_path / 'small.png')
    Image.new('RGB', (8, 6), (200, 100, 0)).save(path)
    with pytest.raises(
            ValueError,
            match=re.escape(path) + r'.*8 x 6 = 48 pixels, more '
            r'than max_pixels=47'):
        _build_loader(max_pixels=47)(dict(img_path=path))
    img = _build_loader(max_pixels=48)(dict(img_path=path))['img']
    assert img.shape == (6, 8, 3)
    assert img[0, 0].tolist() == [0, 100, 200]  # BGR, as mmcv decodes
    # None switches the header check off (OpenCV-only formats).
    assert _build_loader(max_pixels=None)(
        dict(img_path=path))['img'].shape == (6, 8, 3)


def test_file_size_cap_is_configurable(tmp_path):
    write_coco(str(tmp_path))
    path = _image_path(str(tmp_path))
    size = os.path.getsize(path)
    with pytest.raises(
            ValueError,
            match=re.escape(path) + rf' \({size} bytes\) is '
            rf'larger than max_file_size={size - 1} bytes'):
        _build_loader(max_file_size=size - 1)(dict(img_path=path))
    assert _build_loader(max_file_size=size)(
        dict(img_path=path))['img'].shape == (8, 8, 3)

    cfg = dict(
        type='CocoMultiLabelDataset',
        data_root=str(tmp_path),
        pipeline=[
            dict(type='CheckedLoadImageFromFile', max_file_size=size - 1),
            dict(type='PackInputs')
        ])
    with pytest.raises(ValueError, match='max_file_size'):
        PartialLabelDataset(cfg, known_ratio=1.0)[0]


@pytest.mark.parametrize('name, value', [('max_pixels', 0),
                                         ('max_file_size', -5),
                                         ('max_pixels', True),
                                         ('max_file_size', 1.5),
                                         ('max_pixels', '1000')])
def test_bad_limits(name, value):
    with pytest.raises(
            ValueError, match=f'{name} must be a positive integer or None'):
        _build_loader(**{name: value})


class _DictBackend(BaseStorageBackend):
    """A non-local storage backend serving bytes from a dict."""
    files = {}

    def get(self, filepath):
        return self.files[str(filepath)]

    def get_text(self, filepath, encoding='utf-8'):
        return self.get(filepath).decode(encoding)


register_backend('sarb_test_dict', _DictBackend, force=True)


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs os.mkfifo')
def test_local_checks_skipped_only_for_a_non_local_backend(tmp_path):
    fifo = str(tmp_path / 'fifo.png')
    os.mkfifo(fifo)
    png = io.BytesIO()
    Image.new('RGB', (4, 3), (0, 0, 255)).save(png, format='PNG')
    _DictBackend.files[fifo] = png.getvalue()
    remote = dict(backend='sarb_test_dict')

    # The same path: a FIFO locally, an image in the remote store.
    assert _build_loader(backend_args=remote)(
        dict(img_path=fifo))['img'].shape == (3, 4, 3)
    for backend_args in (None, dict(backend='local')):
        with _deadline(20), pytest.raises(ValueError, match='FIFO'):
            _build_loader(backend_args=backend_args)(dict(img_path=fifo))

    # The size and pixel caps hold for every backend.
    with pytest.raises(ValueError, match='max_file_size=10 bytes'):
        _build_loader(
            backend_args=remote, max_file_size=10)(
                dict(img_path=fifo))
    bomb = str(tmp_path / 'bomb.png')
    _png_declaring(bomb, 30000, 30000)
    with open(bomb, 'rb') as f:
        _DictBackend.files['remote/bomb.png'] = f.read()
    with pytest.raises(
            ValueError, match='remote/bomb.png declares 900000000 pixels'):
        _build_loader(backend_args=remote)(dict(img_path='remote/bomb.png'))


def test_url_like_local_path_names_the_file(tmp_path):
    path = str(tmp_path) + '/odd://name.jpg'
    with pytest.raises(
            ValueError, match=re.escape(path) + ".*text before '://'"):
        _build_loader()(dict(img_path=path))


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs os.mkfifo')
def test_ignore_empty_skips_missing_but_not_refused_files(tmp_path):
    loader = _build_loader(ignore_empty=True)
    assert loader(dict(img_path=str(tmp_path / 'missing.jpg'))) is None
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    assert loader(dict(img_path=str(empty))) is None
    fifo = str(tmp_path / 'fifo.jpg')
    os.mkfifo(fifo)
    with _deadline(20), pytest.raises(ValueError, match='FIFO'):
        loader(dict(img_path=fifo))


def test_symlink_loop_names_the_file(tmp_path):
    path = str(tmp_path / 'loop.jpg')
    os.symlink(path, path)
    with pytest.raises(
            ValueError,
            match='Cannot access image file ' + re.escape(path) +
            '.*symbolic links'):
        _build_loader()(dict(img_path=path))


def test_decoded_image_without_path_passes_through():
    img = np.zeros((5, 7, 3), np.uint8)
    results = _build_loader()(dict(img=img))
    assert results['img'] is img
