"""mmpretrain's visualization hook, fit for multi-label results."""
from mmpretrain.engine.hooks import VisualizationHook
from mmpretrain.registry import HOOKS

from .partial_label_hook import unwrap_model


@HOOKS.register_module()
class MultiLabelVisualizationHook(VisualizationHook):
    """mmpretrain's ``VisualizationHook``, drawn in the right colours and
    large enough to read.

    The hook draws the images as the dataloader gives them, which the
    stock pipelines load in BGR order (the data preprocessor converts them
    with ``to_rgb``), so red and blue come out swapped (mmpretrain issue
    #1799); here the channels are put in RGB order first. Images whose
    short edge is below ``min_size`` are enlarged to it unless ``resize``
    or ``rescale_factor`` is configured, so that the label text fits. The
    predicted labels (every class at or above the head's threshold) are
    listed by score, highest first.

    Args:
        min_size (int): Smallest short edge of a drawn image. Defaults to
            224.
        **kwargs: Arguments of mmpretrain's ``VisualizationHook``.
    """

    def __init__(self, min_size: int = 224, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_size = min_size
        self._to_rgb = False

    def before_run(self, runner) -> None:
        preprocessor = getattr(
            unwrap_model(runner.model), 'data_preprocessor', None)
        self._to_rgb = bool(
            getattr(preprocessor, 'to_rgb', False)
            or getattr(preprocessor, '_channel_conversion', False))

    def _draw_samples(self, batch_idx, data_batch, data_samples, step=0):
        if not self.enable:
            return
        images = [
            image.flip(0) if self._to_rgb and image.shape[0] == 3 else image
            for image in data_batch['inputs']
        ]
        if (images and 'resize' not in self.draw_args
                and 'rescale_factor' not in self.draw_args
                and min(images[0].shape[1:]) < self.min_size):
            self.draw_args['resize'] = self.min_size
        samples = []
        for sample in data_samples:
            if 'pred_label' in sample and 'pred_score' in sample:
                sample = sample.clone()
                label = sample.pred_label
                order = sample.pred_score[label].argsort(descending=True)
                sample.set_pred_label(label[order])
            samples.append(sample)
        super()._draw_samples(batch_idx, {
            **data_batch, 'inputs': images
        }, samples, step)
