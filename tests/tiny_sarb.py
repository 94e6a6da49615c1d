"""A SARB classifier small enough for unit tests (4 x 32 px in a blink)."""
from mmpretrain.registry import MODELS

import sarb_mm  # noqa: F401


def build_tiny_sarb(num_classes,
                    num_prototypes=3,
                    head_type='SARBHead',
                    **head_options):
    """ResNet-18 at 1/16 width -> neck (D=8) -> SARBHead (extra options);
    ``head_type='DSRBHead'`` gives DSRB (its neck returns the quadrants)."""
    if head_type == 'SARBHead':
        head_options['num_prototypes'] = num_prototypes
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='ResNet',
                depth=18,
                base_channels=4,
                stem_channels=4,
                out_indices=(3, )),
            neck=dict(
                type='SemanticDecouplingNeck',
                num_classes=num_classes,
                in_channels=32,
                feat_channels=8,
                embed_dims=6,
                attn_channels=5,
                with_peak_quadrants=head_type == 'DSRBHead'),
            head=dict(
                type=head_type,
                num_classes=num_classes,
                in_channels=8,
                out_channels=8,
                **head_options)))
