from .epoch_seed_hook import EpochSeedHook
from .finite_loss_hook import FiniteLossHook
from .label_graph_hook import LabelGraphHook
from .multilabel_visualization_hook import MultiLabelVisualizationHook
from .partial_label_hook import PartialLabelHook
from .prototype_hook import PrototypeHook
from .quadrant_prototype_hook import QuadrantPrototypeHook

__all__ = [
    'EpochSeedHook', 'FiniteLossHook', 'LabelGraphHook',
    'MultiLabelVisualizationHook', 'PartialLabelHook', 'PrototypeHook',
    'QuadrantPrototypeHook'
]
