from .functional import (multilabel_prf, split_partial_targets,
                         voc_average_precision)
from .metrics import DumpResultsWithClasses, InterpolatedMultiLabelMetric
from .report import per_class_report

__all__ = [
    'voc_average_precision', 'multilabel_prf', 'InterpolatedMultiLabelMetric',
    'DumpResultsWithClasses', 'per_class_report', 'split_partial_targets'
]
