"""Misses, false alarms and the worst images, against hand-computed
values; the analysis tool's table and pictures."""
import csv

import numpy as np
import pytest
from PIL import Image

from sarb_mm.evaluation import save_prediction_arrays
from sarb_mm.evaluation.decision_errors import (WrongLabel, decision_errors,
                                                worst_images)
from ..test_tools.tiny import load_tool

SCORES = np.array([
    [0.9, 0.2, 0.6],  # all right at (0.5, 0.5, 0.5)
    [0.1, 0.8, 0.4],  # misses 0 (by 0.4), false alarm 1 (by 0.3)
    [0.45, 0.1, 0.7],  # misses 0 (by 0.05); class 2 unknown: not counted
])
LABELS = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 0]], dtype=bool)
VALID = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0]], dtype=bool)


def test_errors_by_hand():
    errors = decision_errors(SCORES, LABELS, VALID, 0.5)
    assert errors[0].misses == [] and errors[0].false_alarms == []
    assert errors[1].misses == [WrongLabel(0, 0.1, 0.5)]
    assert errors[1].false_alarms == [WrongLabel(1, 0.8, 0.5)]
    assert abs(errors[1].margin - 0.7) < 1e-12
    assert errors[2].false_alarms == []  # 0.7 on an unknown entry
    assert abs(errors[2].margin - 0.05) < 1e-12
    assert [e.image for e in worst_images(errors, 5)] == [1, 2]
    # Per-class thresholds: class 0 at 0.05 makes image 1's and 2's
    # class-0 scores right.
    per_class = decision_errors(SCORES, LABELS, VALID, [0.05, 0.5, 0.5])
    assert [e.image for e in worst_images(per_class, 5)] == [1]


def test_tool_writes_the_table_and_pictures(tmp_path, capsys):
    paths = []
    for i in range(3):
        path = tmp_path / f'img{i}.png'
        Image.new('RGB', (40, 30), (i * 80, 100, 50)).save(path)
        paths.append(str(path))
    paths[2] = str(tmp_path / 'moved_away.png')  # listed, not drawable
    preds = str(tmp_path / 'preds.npz')
    targets = np.where(VALID, LABELS.astype(np.int8), -1)
    save_prediction_arrays(preds, SCORES, targets, ['cat', 'dog', 'cow'],
                           paths)
    tool = load_tool('tools/analysis/analyze_results.py')
    ranked = tool.main([preds, str(tmp_path / 'out')])
    assert [e.image for e in ranked] == [1, 2]
    with open(tmp_path / 'out' / 'worst.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [r['image'] for r in rows] == [paths[1], paths[2]]
    assert rows[0]['misses'] == 'cat 0.1000'
    assert rows[0]['false_alarms'] == 'dog 0.8000'
    drawn = sorted(p.name for p in (tmp_path / 'out' / 'worst').iterdir())
    assert drawn == ['001_img1.png']
    with Image.open(tmp_path / 'out' / 'worst' / '001_img1.png') as image:
        assert image.width == 320 and image.height > 240  # + the panel
    out = capsys.readouterr().out
    assert '3 images: 2 with a wrong label (2 misses, 1 false alarms)' in out
    assert f'Not drawn: {paths[2]}' in out
    # A second analysis never mixes its pictures with the first's.
    with pytest.raises(ValueError, match='already holds pictures'):
        tool.main([preds, str(tmp_path / 'out')])
    # Relative image paths, resolved under --image-root.
    relative = str(tmp_path / 'relative.npz')
    save_prediction_arrays(relative, SCORES, targets, ['cat', 'dog', 'cow'],
                           ['img0.png', 'img1.png', 'img2.png'])
    tool.main([
        relative,
        str(tmp_path / 'out2'), '--image-root',
        str(tmp_path), '--count', '2'
    ])
    drawn = sorted(p.name for p in (tmp_path / 'out2' / 'worst').iterdir())
    assert drawn == ['001_img1.png', '002_img2.png']
