from .functional import multilabel_prf, voc_average_precision
from .metrics import DumpResultsWithClasses, InterpolatedMultiLabelMetric
from .report import per_class_report

__all__ = [
    'voc_average_precision', 'multilabel_prf', 'InterpolatedMultiLabelMetric',
    'DumpResultsWithClasses', 'per_class_report'
]
