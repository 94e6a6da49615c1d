"""The attention figure: written, readable, not blank, the right panels."""
import cv2
import matplotlib
import numpy as np
import pytest
from PIL import Image

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.visualization.attention import plot_class_attention, upsample_maps


@pytest.fixture
def inputs():
    rng = np.random.RandomState(0)
    image = np.full((40, 60, 3), 200, np.uint8)
    image[5:20, 10:30] = (255, 0, 0)
    maps = rng.rand(5, 4, 6).astype(np.float32)
    maps /= maps.sum((1, 2), keepdims=True)
    classes = ['red', 'green', 'blue', 'cyan', 'magenta']
    scores = [0.91, 0.52, 0.3, 0.125, 0.01]
    return image, maps, classes, scores


def test_png_written_with_one_panel_per_class(tmp_path, inputs):
    image, maps, classes, scores = inputs
    out = tmp_path / 'sub' / 'attention.png'  # the folder is made
    fig = plot_class_attention(
        image, maps, classes, scores, out_file=out, panel_inches=2, dpi=50)
    pixels = np.asarray(Image.open(out).convert('RGB'), dtype=np.float64)
    # 6 panels in rows of 4 plus a colour-bar column: 2 x 4.5 panels.
    width, height = fig.get_size_inches() * 50
    assert pixels.shape == (round(height), round(width), 3)
    assert pixels.shape[1] > 1.5 * pixels.shape[0]
    assert pixels.var() > 100
    # Not one flat colour per channel in either half: both rows are drawn.
    half = pixels.shape[0] // 2
    assert pixels[:half].var() > 100 and pixels[half:].var() > 100

    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels[:6]] == [
        'input', 'red (0.91)', 'green (0.52)', 'blue (0.30)', 'cyan (0.12)',
        'magenta (0.01)'
    ]
    np.testing.assert_array_equal(panels[0].images[0].get_array(), image)
    for k, ax in enumerate(panels[1:6]):
        base, overlay = ax.images
        np.testing.assert_array_equal(base.get_array(), image)
        # Bilinear upsampling as OpenCV does it (pixel centres aligned).
        expected = cv2.resize(
            maps[k], (60, 40), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(
            overlay.get_array(), expected, rtol=1e-5, atol=1e-7)
        assert overlay.get_alpha() == 0.5
        # One colour scale for all panels, from 0 to the largest value.
        assert overlay.get_clim() == (
            0,
            pytest.approx(
                max(
                    cv2.resize(m, (60,
                                   40), interpolation=cv2.INTER_LINEAR).max()
                    for m in maps)))


def test_upsample_maps_against_opencv():
    maps = np.random.RandomState(1).rand(2, 3, 5).astype(np.float32)
    got = upsample_maps(maps, (12, 20))
    for k in range(2):
        np.testing.assert_allclose(
            got[k],
            cv2.resize(maps[k], (20, 12), interpolation=cv2.INTER_LINEAR),
            rtol=1e-5,
            atol=1e-7)


@pytest.mark.parametrize('name, magic', [('a.pdf', b'%PDF'),
                                         ('a.svg', b'<?xml'),
                                         ('a.jpg', b'\xff\xd8\xff')])
def test_format_follows_extension(tmp_path, inputs, name, magic):
    image, maps, classes, _ = inputs
    fig = plot_class_attention(
        image, maps[:2], classes[:2], out_file=tmp_path / name, dpi=30)
    assert (tmp_path / name).read_bytes().startswith(magic)
    # Without scores the titles are the names alone.
    assert [ax.get_title() for ax in fig.axes
            if ax.images] == ['input', 'red', 'green']


def test_leaves_pyplot_and_its_backend_alone(tmp_path, inputs):
    import matplotlib.pyplot as plt
    backend = matplotlib.get_backend()
    open_figures = plt.get_fignums()
    plot_class_attention(*inputs, out_file=tmp_path / 'a.png', dpi=30)
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == open_figures  # no figure left open


def test_bad_arguments(tmp_path, inputs):
    image, maps, classes, scores = inputs
    with pytest.raises(InvalidInputError, match=r"not 'xyz'\. Use one of"):
        plot_class_attention(
            image, maps, classes, scores, out_file=tmp_path / 'a.xyz')
    assert not (tmp_path / 'a.xyz').exists()
    with pytest.raises(InvalidInputError, match='is a directory'):
        plot_class_attention(image, maps, classes, out_file=tmp_path)
    with pytest.raises(
            InvalidInputError, match='5 maps but 4 class names and 5 scores'):
        plot_class_attention(image, maps, classes[:4], scores)
    with pytest.raises(InvalidInputError, match=r'\(H, W, 3\) RGB'):
        plot_class_attention(image[..., 0], maps, classes)
    with pytest.raises(InvalidInputError, match=r'alpha must be in \[0, 1\]'):
        plot_class_attention(image, maps, classes, alpha=2)
