"""alpha / beta stay exactly put (values and optimizer state) until their
blending branch runs, as with the published optimizer, which skips
parameters without a gradient; weight decay must not move them."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.engine.hooks import PrototypeHook
from tests.tiny_sarb import build_tiny_sarb

C = 4
TARGETS = [[1, 0, -1, 0], [0, 1, 0, -1], [1, -1, 0, 1], [0, 0, 1, -1]]


def _batch(generator):
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_score(
            torch.tensor(t).float()) for i, t in enumerate(TARGETS)
    ]
    images = [
        torch.randint(
            0, 255, (3, 32, 32), generator=generator, dtype=torch.uint8)
        for _ in TARGETS
    ]
    return dict(inputs=images, data_samples=samples)


def _optimizer(params, kind):
    if kind == 'adam':
        return torch.optim.Adam(params, lr=1e-2, weight_decay=5e-4)
    return torch.optim.SGD(params, lr=1e-2, momentum=0.9, weight_decay=5e-4)


def _train(model, optim_wrapper, epochs, iters=3):
    """Train steps as mmengine's loop does them, with the hook's calls."""
    hook = PrototypeHook()
    runner = SimpleNamespace(
        model=model,
        optim_wrapper=optim_wrapper,
        max_epochs=10,
        train_dataloader=SimpleNamespace(
            dataset=SimpleNamespace(
                partial_labels=torch.tensor(TARGETS).numpy())),
        logger=MMLogger.get_instance('idle-test'))
    hook.before_train(runner)
    generator = torch.Generator().manual_seed(0)
    for epoch in epochs:
        for it in range(iters):
            model.head.set_progress(epoch, it, iters)
            data = model.data_preprocessor(_batch(generator), True)
            losses = model(**data, mode='loss')
            loss, _ = model.parse_losses(losses)
            optim_wrapper.update_params(loss)


def _model(**head_options):
    torch.manual_seed(0)
    model = build_tiny_sarb(C, blend_start_epoch=2, **head_options)
    # Prototypes exist from the start: only the epoch gates PLRB here.
    model.head.set_prototypes(
        torch.randn_like(model.head.prototypes),
        torch.ones(C, dtype=torch.bool))
    return model


@pytest.mark.parametrize('kind', ['adam', 'sgd'])
def test_alpha_beta_untouched_before_blending_then_trained(kind):
    model = _model()
    head = model.head
    optimizer = _optimizer(model.parameters(), kind)
    optim_wrapper = OptimWrapper(optimizer)
    _train(model, optim_wrapper, epochs=[0, 1])
    # Exactly the initial values, and no optimizer state: the step skipped
    # them (a zero gradient would have moved them by about lr per step).
    assert head.alpha.item() == 0.5 and head.beta.item() == 0.5
    assert head.alpha not in optimizer.state
    assert head.beta not in optimizer.state
    # The other parameters did train, with state.
    assert head.class_bias in optimizer.state
    assert optimizer.state[head.class_bias]

    _train(model, optim_wrapper, epochs=[2])
    assert head.alpha.item() != 0.5 and head.beta.item() != 0.5
    assert head.alpha in optimizer.state and head.beta in optimizer.state


def test_branch_switched_off_leaves_its_weight_untouched():
    for option, idle, trained in (('use_ilrb', 'alpha', 'beta'),
                                  ('use_plrb', 'beta', 'alpha')):
        model = _model(**{option: False})
        optimizer = _optimizer(model.parameters(), 'adam')
        _train(model, OptimWrapper(optimizer), epochs=[0, 2, 3])
        assert getattr(model.head, idle).item() == 0.5, option
        assert getattr(model.head, idle) not in optimizer.state, option
        assert getattr(model.head, trained).item() != 0.5, option


def test_plrb_waits_for_prototypes():
    torch.manual_seed(0)
    model = build_tiny_sarb(C, blend_start_epoch=0)
    assert model.head.idle_parameters() == [model.head.alpha, model.head.beta]
    model.head.set_progress(0, 0, 1)
    assert model.head.idle_parameters() == [model.head.beta]
    model.head.set_prototypes(
        torch.randn_like(model.head.prototypes),
        torch.ones(C, dtype=torch.bool))
    assert model.head.idle_parameters() == []


def test_warns_when_blending_never_starts():
    model = _model()
    logger = MMLogger.get_instance('idle-warn-test')
    messages = []
    logger.warning = messages.append
    runner = SimpleNamespace(
        model=model,
        max_epochs=2,
        optim_wrapper=OptimWrapper(_optimizer(model.parameters(), 'adam')),
        train_dataloader=SimpleNamespace(
            dataset=SimpleNamespace(
                partial_labels=torch.tensor(TARGETS).numpy())),
        logger=logger)
    PrototypeHook().before_train(runner)
    assert len(messages) == 1
    assert 'blend_start_epoch=2' in messages[0]
    assert 'no blending' in messages[0]
    runner.max_epochs = 3
    PrototypeHook().before_train(runner)
    assert len(messages) == 1
