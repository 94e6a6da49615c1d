"""Multi-label TTA: averaged scores, labels from the average."""
import torch
from mmpretrain.structures import DataSample

from sarb_mm.models.tta import MultiLabelAverageScoreTTA
from tests.tiny_sarb import build_tiny_sarb


def _view(scores, labels):
    sample = DataSample().set_pred_score(torch.tensor(scores))
    return sample.set_pred_label(torch.tensor(labels))


def test_labels_follow_the_averaged_score():
    tta = MultiLabelAverageScoreTTA(module=build_tiny_sarb(4))
    # The first view alone would predict classes 0 and 1.
    views = [[
        _view([.9, .6, .1, .45], [0, 1]),
        _view([.7, .2, .3, .6], [0, 3])
    ]]
    merged = tta.merge_preds(views)[0]
    torch.testing.assert_close(merged.pred_score,
                               torch.tensor([.8, .4, .2, .525]))
    assert merged.pred_label.tolist() == [0, 3]

    tta.module.head.thr, tta.module.head.topk = None, 1
    assert tta.merge_preds(views)[0].pred_label.tolist() == [0]
