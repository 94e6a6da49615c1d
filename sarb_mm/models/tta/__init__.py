from .multi_label_tta import MultiLabelAverageScoreTTA

__all__ = ['MultiLabelAverageScoreTTA']
