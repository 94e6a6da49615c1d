"""A generated, download-free multi-label demo dataset in COCO format.

The scenes are coloured shapes on a noisy, cluttered background. A class is
a *(colour, shape)* conjunction (``red_circle`` vs ``red_square`` vs
``blue_circle``), and the clutter re-uses class colours and class shapes in
combinations that are not classes, so neither colour nor shape alone solves
the task. Images are grouped into latent "scene types" whose objects tend
to co-occur, which gives label-relation models (SARB) something to exploit.

The output mirrors real COCO closely enough for the COCO loaders of this
package: non-contiguous category ids, ``iscrowd`` boxes, and images without
any object that are still listed in ``images``.

Example:
    >>> from sarb_mm.datasets.synthetic import make_demo_dataset
    >>> info = make_demo_dataset('data/demo')  # doctest: +SKIP
    >>> info['num_images']  # doctest: +SKIP
    {'train': 2000, 'val': 500}
"""
import json
import math
import os
import os.path as osp

import numpy as np
from PIL import Image, ImageDraw

# Class colours are saturated and far apart in RGB so JPEG and the colour
# jitter never move one class colour onto another.
_COLORS = {
    'red': (215, 35, 35),
    'green': (35, 170, 50),
    'blue': (45, 70, 225),
    'yellow': (235, 210, 40),
    'magenta': (205, 45, 200),
    'cyan': (40, 200, 215),
    'orange': (240, 135, 25),
    'white': (245, 245, 245),
}
_SHAPES = ('circle', 'square', 'triangle', 'ring', 'cross', 'stripes',
           'diamond', 'star')

# (category id, colour, shape). Ids skip numbers like real COCO so that code
# which assumes ``label == category_id - 1`` fails on the demo too.
_CATEGORY_TABLE = (
    (1, 'red', 'circle'),
    (2, 'green', 'square'),
    (3, 'blue', 'triangle'),
    (5, 'yellow', 'ring'),
    (6, 'magenta', 'cross'),
    (8, 'cyan', 'stripes'),
    (10, 'orange', 'diamond'),
    (11, 'white', 'star'),
    (13, 'blue', 'circle'),
    (15, 'red', 'square'),
    (17, 'green', 'triangle'),
    (19, 'yellow', 'cross'),
)
DEMO_CATEGORY_IDS = [cid for cid, _, _ in _CATEGORY_TABLE]
DEMO_CATEGORIES = [f'{color}_{shape}' for _, color, shape in _CATEGORY_TABLE]

# Latent scene types: indices into ``_CATEGORY_TABLE`` of the objects that
# usually appear together. Every class belongs to exactly one scene, and
# scenes deliberately mix colours and shapes so co-occurrence is not a
# shortcut for either.
_SCENES = (
    (0, 1, 3),  # red_circle, green_square, yellow_ring
    (2, 4, 5),  # blue_triangle, magenta_cross, cyan_stripes
    (6, 7, 10),  # orange_diamond, white_star, green_triangle
    (8, 9, 11),  # blue_circle, red_square, yellow_cross
)
_CLASS_COMBOS = {(color, shape) for _, color, shape in _CATEGORY_TABLE}
# Saturated (colour, shape) pairs that are *not* classes; drawn as hard
# distractors.
_NON_CLASS_COMBOS = tuple(
    (c, s) for c in _COLORS for s in _SHAPES if (c, s) not in _CLASS_COMBOS)

_P_EMPTY = 0.06  # images with no object at all (all-negative labels)
_NUM_OBJECTS_P = (0.35, 0.30, 0.20, 0.15)  # P(1..4 objects | not empty)
_P_IN_SCENE = 0.8  # an object comes from its scene's set, else any class
_OBJ_SIZE = (0.22, 0.38)  # object extent as a fraction of the image side
# An object is labelled only if at least this fraction of its drawn pixels
# is left uncovered by the objects and strokes drawn after it: a person
# looking at the image must be able to see what the label says.
MIN_VISIBLE_FRACTION = 0.5
_JPEG_QUALITY = 90
# Written first into a directory the generator owns; only such a directory
# (or an empty one) is ever written to.
DEMO_MARKER = '.sarb_mm_demo'


def make_demo_dataset(root,
                      num_train=2000,
                      num_val=500,
                      image_size=64,
                      seed=0):
    """Generate the synthetic multi-label demo dataset in COCO format.

    Writes ``root/{train,val}/*.jpg`` and
    ``root/annotations/instances_{train,val}.json``. The annotation files are
    removed first and written last (atomically, via rename), so a dataset
    whose generation was interrupted has no annotation file and can be
    detected and regenerated.

    ``root`` is only written to if it does not exist, is empty, or holds the
    marker file ``.sarb_mm_demo`` that this function writes before anything
    else; any other directory raises :class:`FileExistsError` without a
    single file being touched, since it may hold another dataset whose
    annotations and images would be overwritten.

    The output is a pure function of the arguments: the same seed gives
    byte-identical images and JSON.

    Args:
        root (str): Output directory (created if missing).
        num_train (int): Number of training images. Defaults to 2000.
        num_val (int): Number of validation images. Defaults to 500.
        image_size (int): Side of the square images in pixels. Defaults
            to 64.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: ``root``, ``image_dirs`` and ``ann_files`` (split -> path),
        ``num_images``, ``num_annotations`` and ``num_empty_images``
        (split -> count), ``num_categories`` and ``categories`` (names in
        category-id order).
    """
    if image_size < 16:
        raise ValueError(f'image_size must be >= 16, got {image_size}')
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be non-negative')

    claim_demo_root(root)
    ann_dir = osp.join(root, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    splits = {'train': num_train, 'val': num_val}
    ann_files = {s: osp.join(ann_dir, f'instances_{s}.json') for s in splits}
    # A stale annotation file next to half-rewritten images would make an
    # interrupted run look complete.
    for path in ann_files.values():
        if osp.exists(path):
            os.remove(path)

    info = dict(
        root=root,
        image_dirs={},
        ann_files=ann_files,
        num_images={},
        num_annotations={},
        num_empty_images={},
        num_categories=len(DEMO_CATEGORIES),
        categories=list(DEMO_CATEGORIES))
    cocos = {}
    for split_idx, (split, num) in enumerate(splits.items()):
        img_dir = osp.join(root, split)
        os.makedirs(img_dir, exist_ok=True)
        coco = _generate_split(img_dir, split, split_idx, num, image_size,
                               seed)
        cocos[split] = coco
        annotated = {a['image_id'] for a in coco['annotations']}
        info['image_dirs'][split] = img_dir
        info['num_images'][split] = len(coco['images'])
        info['num_annotations'][split] = len(coco['annotations'])
        info['num_empty_images'][split] = len(coco['images']) - len(annotated)

    # Only now, with every image on disk, publish the annotations.
    for split, coco in cocos.items():
        _atomic_write_json(coco, ann_files[split])
    return info


def claim_demo_root(root):
    """Make ``root`` a demo dataset directory, or refuse to touch it.

    A missing or empty directory gets the marker file :data:`DEMO_MARKER`
    (written before anything else, so even an interrupted generation left
    it); a directory that has the marker is accepted as is.

    Args:
        root (str): Output directory of :func:`make_demo_dataset`.

    Raises:
        FileExistsError: ``root`` is a non-empty directory without the
            marker.
        NotADirectoryError: ``root`` exists but is not a directory.
    """
    root = os.fspath(root) or '.'  # '' is the working directory
    marker = osp.join(root, DEMO_MARKER)
    if osp.lexists(root) and not osp.isdir(root):
        raise NotADirectoryError(
            f'Cannot write the demo dataset to {root!r}: it exists but is '
            'not a directory. Choose another path (data_root in the config, '
            '--out for tools/make_demo_dataset.py).')
    if osp.isdir(root):
        if osp.isfile(marker) and not osp.islink(marker):
            return
        entries = sorted(os.listdir(root))
        if entries:
            raise FileExistsError(
                f'Refusing to write the demo dataset into {root!r}: the '
                f'directory is not empty ({len(entries)} entries, e.g. '
                f'{entries[0]!r}) and has no {DEMO_MARKER} marker file, so '
                'it was not made by make_demo_dataset and may hold another '
                'dataset whose annotation files and images would be '
                'overwritten. Use a new or empty directory (data_root in the '
                'config, --out for tools/make_demo_dataset.py); if it holds '
                'an older demo dataset, delete it first.')
    os.makedirs(root, exist_ok=True)
    with open(marker, 'x') as f:
        f.write('Generated by sarb_mm.datasets.make_demo_dataset, which may '
                'overwrite\nthis directory; delete the whole directory to '
                'remove the dataset.\n')


def _generate_split(img_dir, split, split_idx, num, image_size, seed):
    """Render and save one split; return its COCO dict (not yet written)."""
    images, annotations = [], []
    for i in range(num):
        # One independent stream per image: output does not depend on
        # iteration order, and train does not shift when num_val changes.
        rng = np.random.default_rng([seed, split_idx, i])
        img, objects = _render_scene(rng, image_size)
        image_id = i + 1
        file_name = f'{split}_{image_id:06d}.jpg'
        img.save(
            osp.join(img_dir, file_name),
            format='JPEG',
            quality=_JPEG_QUALITY,
            subsampling=0)
        images.append(
            dict(
                id=image_id,
                file_name=file_name,
                width=image_size,
                height=image_size))
        for cat_idx, bbox in objects:
            x, y, w, h = bbox
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=DEMO_CATEGORY_IDS[cat_idx],
                    bbox=[x, y, w, h],
                    area=float(w * h),
                    iscrowd=0))
    categories = [
        dict(id=cid, name=name, supercategory='shape')
        for cid, name in zip(DEMO_CATEGORY_IDS, DEMO_CATEGORIES)
    ]
    return dict(
        info=dict(
            description='sarb_mm synthetic multi-label demo dataset',
            split=split,
            seed=seed,
            image_size=image_size),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=categories)


def _atomic_write_json(obj, path):
    """Write JSON via a temp file + rename so readers never see half."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# Scene sampling and rendering
# --------------------------------------------------------------------------


def _sample_labels(rng):
    """Pick the category indices (with repeats) of one image's objects."""
    if rng.random() < _P_EMPTY:
        return []
    scene = _SCENES[rng.integers(len(_SCENES))]
    num = rng.choice(len(_NUM_OBJECTS_P), p=_NUM_OBJECTS_P) + 1
    labels = []
    for _ in range(num):
        if rng.random() < _P_IN_SCENE:
            labels.append(int(scene[rng.integers(len(scene))]))
        else:
            labels.append(int(rng.integers(len(_CATEGORY_TABLE))))
    return labels


def _render_scene(rng, size):
    """Render one image.

    Returns:
        tuple: The PIL image and a list of ``(category_index, bbox)`` with
        bbox ``[x, y, w, h]`` in pixels.
    """
    # The objects are drawn before anything size-dependent consumes the
    # stream, so one seed draws the same objects at every ``image_size``
    # (which of them stay visible enough to be labelled can differ).
    drawn = _sample_labels(rng)
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    _draw_clutter(rng, draw, size)

    masks, boxes = [], []
    for cat_idx in drawn:
        _, color_name, shape = _CATEGORY_TABLE[cat_idx]
        extent = rng.uniform(*_OBJ_SIZE) * size
        center = _place(rng, size, extent, boxes)
        mask = Image.new('1', (size, size))
        bbox = _draw_shape(
            _MaskedDraw(draw, ImageDraw.Draw(mask)), rng, shape,
            _jitter_color(rng, _COLORS[color_name]), center, extent)
        boxes.append(bbox)
        masks.append(np.asarray(mask))

    # A few thin strokes on top so objects are sometimes partly occluded.
    strokes = Image.new('1', (size, size))
    stroke_draw = _MaskedDraw(draw, ImageDraw.Draw(strokes))
    for _ in range(rng.integers(0, 3)):
        _draw_line(rng, stroke_draw, size, _muted_color(rng))
    visible = visible_fractions(masks + [np.asarray(strokes)])[:len(masks)]
    objects = [(cat_idx, _to_xywh(bbox, size))
               for cat_idx, bbox, fraction in zip(drawn, boxes, visible)
               if fraction >= MIN_VISIBLE_FRACTION]
    return img, objects


def visible_fractions(masks):
    """Fraction of each layer's pixels that no later layer covers.

    Args:
        masks (list[np.ndarray]): Boolean ``H x W`` masks in drawing order
            (later layers are painted over earlier ones).

    Returns:
        list[float]: One fraction per mask; 0 for an empty mask.
    """
    fractions = []
    covered = np.zeros_like(masks[0], dtype=bool) if masks else None
    for mask in reversed(masks):
        mask = np.asarray(mask, dtype=bool)
        area = int(mask.sum())
        seen = int((mask & ~covered).sum())
        fractions.append(seen / area if area else 0.0)
        covered |= mask
    return fractions[::-1]


class _MaskedDraw:
    """Draws on the image and, in the same geometry, on a 1-bit mask."""

    def __init__(self, draw, mask_draw):
        self._draw = draw
        self._mask_draw = mask_draw

    def ellipse(self, xy, fill=None, outline=None, width=1):
        self._draw.ellipse(xy, fill=fill, outline=outline, width=width)
        self._mask_draw.ellipse(
            xy,
            fill=None if fill is None else 1,
            outline=None if outline is None else 1,
            width=width)

    def polygon(self, xy, fill=None):
        self._draw.polygon(xy, fill=fill)
        self._mask_draw.polygon(xy, fill=1)

    def line(self, xy, fill=None, width=1):
        self._draw.line(xy, fill=fill, width=width)
        self._mask_draw.line(xy, fill=1, width=width)


def _background(rng, size):
    """Smooth random colour field plus pixel noise."""
    grid = rng.integers(3, 7)
    base = rng.uniform(40, 170, size=3)
    low = base + rng.normal(0, 30, size=(grid, grid, 3))
    low = np.clip(low, 0, 255).astype(np.uint8)
    field = np.asarray(
        Image.fromarray(low).resize((size, size), Image.BILINEAR),
        dtype=np.float32)
    field += rng.normal(0, 14, size=field.shape)
    return Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))


def _draw_clutter(rng, draw, size):
    """Non-class clutter: strokes, blobs, and non-class colour/shape pairs."""
    for _ in range(rng.integers(2, 6)):
        _draw_line(rng, draw, size, _muted_color(rng))
    for _ in range(rng.integers(1, 4)):
        # Muted versions of the class shapes: same geometry, wrong colour.
        shape = _SHAPES[rng.integers(len(_SHAPES))]
        extent = rng.uniform(0.12, 0.3) * size
        center = rng.uniform(0, size, size=2)
        _draw_shape(draw, rng, shape, _muted_color(rng), center, extent)
    for _ in range(rng.integers(0, 3)):
        # Saturated but non-class (colour, shape) pairs, e.g. a red triangle:
        # forces the model to bind colour to shape.
        color, shape = _NON_CLASS_COMBOS[rng.integers(len(_NON_CLASS_COMBOS))]
        extent = rng.uniform(*_OBJ_SIZE) * size
        center = rng.uniform(0.1 * size, 0.9 * size, size=2)
        _draw_shape(draw, rng, shape, _jitter_color(rng, _COLORS[color]),
                    center, extent)


def _draw_line(rng, draw, size, color):
    pts = rng.uniform(-0.1 * size, 1.1 * size, size=4)
    width = max(1, int(rng.integers(1, 3) * size / 64))
    draw.line([tuple(pts[:2]), tuple(pts[2:])], fill=color, width=width)


def _place(rng, size, extent, boxes, tries=10):
    """Choose an object centre that keeps it mostly visible.

    Rejection-samples centres whose box overlaps earlier objects by less
    than 30% IoU, falling back to the last try so the number of drawn
    objects never depends on whether placement succeeded. Boxes are only
    a proxy: :func:`visible_fractions` decides which objects are labelled.
    """
    half = extent / 2
    for _ in range(tries):
        center = rng.uniform(half, size - half, size=2)
        box = (center[0] - half, center[1] - half, center[0] + half,
               center[1] + half)
        if all(_iou(box, b) < 0.3 for b in boxes):
            break
    return center


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) -
             inter)
    return inter / union if union > 0 else 0.0


def _jitter_color(rng, rgb):
    """Brightness and per-channel jitter that keeps the hue recognisable."""
    c = np.asarray(rgb, np.float32) * rng.uniform(0.8, 1.1)
    c += rng.normal(0, 12, size=3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _muted_color(rng):
    """A low-saturation colour that is never confused with a class colour."""
    grey = rng.uniform(30, 200)
    c = grey + rng.normal(0, 18, size=3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _rotate(points, angle, center):
    ca, sa = math.cos(angle), math.sin(angle)
    cx, cy = center
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]


def _draw_shape(draw, rng, shape, color, center, extent):
    """Draw ``shape`` centred at ``center`` with side about ``extent``.

    Returns:
        tuple: The ``(x0, y0, x1, y1)`` extent of what was drawn.
    """
    r = extent / 2
    cx, cy = float(center[0]), float(center[1])
    if shape in ('circle', 'ring'):
        # Mild ellipticity so circles are not pixel-perfect templates.
        rx, ry = r * rng.uniform(0.85, 1.0), r * rng.uniform(0.85, 1.0)
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        if shape == 'circle':
            draw.ellipse(box, fill=color)
        else:
            draw.ellipse(box, outline=color, width=max(2, int(r * 0.35)))
        return box
    angle = rng.uniform(-math.pi, math.pi)
    if shape == 'square':
        # Limited rotation so a square never turns into a diamond.
        s = r * 0.85
        pts = _rotate([(-s, -s), (s, -s), (s, s), (-s, s)],
                      rng.uniform(-0.35, 0.35), (cx, cy))
    elif shape == 'diamond':
        pts = _rotate([(0, -r), (r * 0.55, 0), (0, r), (-r * 0.55, 0)],
                      rng.uniform(-0.35, 0.35), (cx, cy))
    elif shape == 'triangle':
        pts = _rotate([(r * math.cos(a), r * math.sin(a))
                       for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)],
                      angle, (cx, cy))
    elif shape == 'star':
        pts = _rotate([((r if k % 2 == 0 else r * 0.45) *
                        math.cos(-math.pi / 2 + k * math.pi / 5),
                        (r if k % 2 == 0 else r * 0.45) *
                        math.sin(-math.pi / 2 + k * math.pi / 5))
                       for k in range(10)], angle, (cx, cy))
    elif shape == 'cross':
        return _draw_cross(draw, color, cx, cy, r, rng.uniform(-0.4, 0.4))
    elif shape == 'stripes':
        return _draw_stripes(draw, color, cx, cy, r, angle)
    else:
        raise ValueError(f'unknown shape {shape!r}')
    draw.polygon(pts, fill=color)
    return _points_box(pts)


def _draw_cross(draw, color, cx, cy, r, angle):
    t = r * 0.32  # half thickness of each bar
    bars = ([(-r, -t), (r, -t), (r, t), (-r, t)], [(-t, -r), (t, -r), (t, r),
                                                   (-t, r)])
    all_pts = []
    for bar in bars:
        pts = _rotate(bar, angle, (cx, cy))
        draw.polygon(pts, fill=color)
        all_pts += pts
    return _points_box(all_pts)


def _draw_stripes(draw, color, cx, cy, r, angle):
    """Three parallel bars in a square patch; the background shows between."""
    band = 2 * r / 5  # five equal bands across the patch: bar, gap, ...
    all_pts = []
    for k in (-2, 0, 2):
        y0, y1 = (k - 0.5) * band, (k + 0.5) * band
        pts = _rotate([(-r, y0), (r, y0), (r, y1), (-r, y1)], angle, (cx, cy))
        draw.polygon(pts, fill=color)
        all_pts += pts
    return _points_box(all_pts)


def _points_box(pts):
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def _to_xywh(box, size):
    """Clip an ``(x0, y0, x1, y1)`` box to the image; round to 0.01 px."""
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(size), box[2]), min(float(size), box[3])
    return [
        round(x0, 2),
        round(y0, 2),
        round(max(0.0, x1 - x0), 2),
        round(max(0.0, y1 - y0), 2)
    ]
