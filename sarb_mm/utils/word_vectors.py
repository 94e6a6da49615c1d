"""Category embeddings from a GloVe text file (SPEC section 2)."""
from typing import Dict, Iterable, List, Sequence

import numpy as np

# The 80 MS-COCO category names in ascending category-id order.
COCO_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag',
    'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
    'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot',
    'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush')

# VOC names written as one token, split into the words GloVe knows.
_SPLIT_NAMES = {
    'diningtable': 'dining table',
    'pottedplant': 'potted plant',
    'tvmonitor': 'tv monitor',
}


def name_to_words(name: str) -> List[str]:
    """Words of a category name: lower case, split on space/_/-."""
    name = _SPLIT_NAMES.get(name, name)
    return name.lower().replace('_', ' ').replace('-', ' ').split()


def read_glove(path: str,
               words: Iterable[str],
               dim: int = 300) -> Dict[str, np.ndarray]:
    """Read the vectors of ``words`` from a GloVe ``.txt`` file.

    Streams the file (the 840B file is ~5 GB) and keeps only what is asked.
    Tokens may contain spaces (a few in glove.840B do), so the vector is the
    last ``dim`` fields of a line and the token everything before.
    """
    wanted = set(words)
    found: Dict[str, np.ndarray] = {}
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            parts = line.rstrip('\n').rstrip(' ').split(' ')
            word = ' '.join(parts[:-dim])
            if word in wanted and word not in found:
                try:
                    found[word] = np.asarray(parts[-dim:], dtype=np.float32)
                except ValueError:
                    raise ValueError(f'{path}:{line_no}: not a GloVe line '
                                     f'of {dim} numbers.') from None
    return found


def build_word_vectors(class_names: Sequence[str],
                       glove_path: str,
                       dim: int = 300) -> np.ndarray:
    """(C, dim) embeddings: each name's word vectors averaged.

    Raises:
        KeyError: Listing every class with words missing from the file.
    """
    words = {name: name_to_words(name) for name in class_names}
    vectors = read_glove(glove_path, (w for ws in words.values() for w in ws),
                         dim)
    missing = {
        name: [w for w in ws if w not in vectors]
        for name, ws in words.items()
        if not ws or any(w not in vectors for w in ws)
    }
    if missing:
        listing = '; '.join(f'{name!r}: {ws or "(no word)"}'
                            for name, ws in missing.items())
        raise KeyError(f'{glove_path} lacks words of {len(missing)} '
                       f'classes: {listing}. Rename those classes (e.g. '
                       'through a --classes file) to words GloVe knows.')
    return np.stack([
        np.mean([vectors[w] for w in words[name]], axis=0)
        for name in class_names
    ]).astype(np.float32)
