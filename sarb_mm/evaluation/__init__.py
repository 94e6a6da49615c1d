from .functional import multilabel_prf, voc_average_precision
from .metrics import InterpolatedMultiLabelMetric

__all__ = [
    'voc_average_precision', 'multilabel_prf', 'InterpolatedMultiLabelMetric'
]
