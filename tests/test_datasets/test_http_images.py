"""Images from an HTTP server (mmengine's HTTP backend), with the size and
pixel caps and the named errors of local files. The server is python's
http.server on 127.0.0.1, started by the test."""
import functools
import http.server
import threading

import mmcv
import numpy as np
import pytest
from mmengine.dataset import Compose
from PIL import Image

import sarb_mm  # noqa: F401  (registers the transforms)
from sarb_mm.datasets.transforms import (CheckedLoadImageFromFile,
                                         ImageFileError)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/endless`` declares no length and never ends,
    ``/liar`` declares a huge Content-Length."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path == '/endless':
            self.send_response(200)
            self.end_headers()
            chunk = b'\0' * 65536
            try:
                for _ in range(10_000):  # 640 MB if nobody stops reading
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if self.path == '/liar':
            self.send_response(200)
            self.send_header('Content-Length', str(10**12))
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    """Clients that stop reading (as the loader does past its cap) are
    expected here, not errors to print."""

    def handle_error(self, request, client_address):
        pass


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp('www')
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / 'photo.png')
    big = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(big).save(root / 'big.png')
    handler = functools.partial(_Handler, directory=str(root))
    httpd = _QuietServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}', root
    httpd.shutdown()
    httpd.server_close()


def test_pipeline_loads_an_http_image(server):
    base, root = server
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(16, 16)),
    ])
    result = pipeline(dict(img_path=f'{base}/photo.png'))
    local = mmcv.imread(str(root / 'photo.png'))
    raw = CheckedLoadImageFromFile()(dict(img_path=f'{base}/photo.png'))
    np.testing.assert_array_equal(raw['img'], local)  # the same pixels
    assert result['img'].shape == (16, 16, 3)


def test_missing_http_image_is_named(server):
    base, _ = server
    with pytest.raises(FileNotFoundError) as info:
        CheckedLoadImageFromFile()(dict(img_path=f'{base}/gone.png'))
    assert f'Image file {base}/gone.png does not exist' in str(info.value)
    assert CheckedLoadImageFromFile(ignore_empty=True)(
        dict(img_path=f'{base}/gone.png')) is None


def test_oversized_http_images_are_refused(server):
    base, _ = server
    size = (server[1] / 'big.png').stat().st_size
    small = CheckedLoadImageFromFile(max_file_size=size - 1)
    with pytest.raises(
            ImageFileError,
            match=f'{base}/big.png .* larger '
            f'than max_file_size={size - 1}'):
        small(dict(img_path=f'{base}/big.png'))
    # A declared length above the cap: refused before any body is read.
    with pytest.raises(ImageFileError, match='liar .*1000000000000 bytes'):
        small(dict(img_path=f'{base}/liar'))
    # No declared length: the read stops after the cap.
    with pytest.raises(ImageFileError, match='endless .* or more'):
        CheckedLoadImageFromFile(max_file_size=100_000)(
            dict(img_path=f'{base}/endless'))
    pixels = CheckedLoadImageFromFile(max_pixels=200 * 200 - 1)
    with pytest.raises(ImageFileError, match='declares 200 x 200 = 40000'):
        pixels(dict(img_path=f'{base}/big.png'))


def test_unreachable_server_is_named():
    url = 'http://127.0.0.1:9/photo.png'  # the discard port: nobody there
    with pytest.raises(ImageFileError, match=f'Cannot fetch image {url}'):
        CheckedLoadImageFromFile()(dict(img_path=url))
