"""init_model: a checkpoint alone supplies the embeddings and class names."""
import numpy as np
import pytest
import torch

from sarb_mm.apis import init_model
from sarb_mm.datasets.synthetic import DEMO_CATEGORIES
from sarb_mm.utils.errors import InvalidInputError
from .helpers import CONFIG, save_checkpoint, tiny_cfg_options

NAMES = [f'thing_{i}' for i in range(12)]


@pytest.fixture
def vectors_file(tmp_path):
    """A (12, 16) word-vector file for the tiny neck (embed_dims=16)."""
    path = tmp_path / 'vectors.npy'
    rng = np.random.default_rng(0)
    np.save(path, rng.normal(size=(12, 16)).astype(np.float32))
    return path


def _outputs(model, seed=0):
    images = torch.rand(
        3, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 255
    with torch.no_grad():
        data = model.data_preprocessor({'inputs': list(images.byte())})
        logits = model(data['inputs'], mode='tensor')
        scores = torch.stack(
            [s.pred_score for s in model(data['inputs'], mode='predict')])
    return logits, scores


def test_checkpoint_replaces_a_missing_word_vector_file(
        tmp_path, vectors_file):
    options = tiny_cfg_options(
        str(tmp_path), **{'model.neck.word_vectors': str(vectors_file)})
    torch.manual_seed(0)
    from_file = init_model(CONFIG, cfg_options=options)
    vectors = torch.from_numpy(np.load(vectors_file))
    assert torch.equal(from_file.neck.embeddings, vectors)
    checkpoint = save_checkpoint(tmp_path / 'model.pth',
                                 from_file.state_dict(), NAMES)
    vectors_file.unlink()

    torch.manual_seed(1)  # other initial weights: all must come from it
    from_checkpoint = init_model(CONFIG, checkpoint, cfg_options=options)

    # The same model as the one built from the file: a buffer holding the
    # file's vectors, the same parameters, the same outputs.
    buffers = dict(from_checkpoint.neck.named_buffers())
    assert torch.equal(buffers['embeddings'], vectors)
    assert ([n for n, _ in from_checkpoint.named_parameters()
             ] == [n for n, _ in from_file.named_parameters()])
    for got, want in zip(_outputs(from_checkpoint), _outputs(from_file)):
        assert torch.equal(got, want)
    assert from_checkpoint.dataset_meta == {'classes': tuple(NAMES)}
    assert not from_checkpoint.training
    assert from_checkpoint.cfg.model.neck.word_vectors == str(vectors_file)


def test_no_word_vectors_anywhere_is_an_error(tmp_path):
    missing = str(tmp_path / 'glove.npy')
    options = tiny_cfg_options(
        str(tmp_path), **{'model.neck.word_vectors': missing})
    with pytest.raises(InvalidInputError) as info:
        init_model(CONFIG, cfg_options=options)
    message = str(info.value)
    assert 'model.neck.word_vectors' in message and missing in message
    assert 'checkpoint' in message

    # A checkpoint without the embeddings does not help either.
    learned = init_model(CONFIG, cfg_options=tiny_cfg_options(str(tmp_path)))
    state = {
        k: v
        for k, v in learned.state_dict().items() if k != 'neck.embeddings'
    }
    checkpoint = save_checkpoint(tmp_path / 'bare.pth', state, NAMES)
    with pytest.raises(InvalidInputError) as info:
        init_model(CONFIG, checkpoint, cfg_options=options)
    message = str(info.value)
    assert checkpoint in message and 'neck.embeddings' in message
    assert missing in message


def test_checkpoint_is_loaded_strictly(tmp_path):
    options = tiny_cfg_options(str(tmp_path))
    state = init_model(CONFIG, cfg_options=options).state_dict()

    extra = dict(state, **{'head.extra': torch.zeros(2)})
    path = save_checkpoint(tmp_path / 'extra.pth', extra, NAMES)
    with pytest.raises(InvalidInputError, match='unexpected') as info:
        init_model(CONFIG, path, cfg_options=options)
    assert 'head.extra' in str(info.value) and path in str(info.value)
    # tools/test.py's flag means nothing to a user of init_model.
    assert '--non-strict' not in str(info.value)

    missing = {k: v for k, v in state.items() if k != 'head.fc.bias'}
    path = save_checkpoint(tmp_path / 'missing.pth', missing, NAMES)
    with pytest.raises(InvalidInputError, match='missing') as info:
        init_model(CONFIG, path, cfg_options=options)
    assert 'head.fc.bias' in str(info.value)

    # Trained with another width: every reshaped key is named.
    path = save_checkpoint(tmp_path / 'wide.pth', state, NAMES)
    with pytest.raises(InvalidInputError, match='another shape'):
        init_model(
            CONFIG,
            path,
            cfg_options=dict(
                options, **{
                    'model.neck.feat_channels': 32,
                    'model.head.in_channels': 32,
                    'model.head.out_channels': 32
                }))


def test_class_names_fall_back_to_the_config_then_to_numbers(
        tmp_path, warnings_seen):
    options = tiny_cfg_options(str(tmp_path))
    state = init_model(CONFIG, cfg_options=options).state_dict()
    bare = save_checkpoint(tmp_path / 'bare.pth', state)

    model = init_model(CONFIG, bare, cfg_options=options)
    assert model.dataset_meta['classes'] == tuple(f'class_{i}'
                                                  for i in range(12))
    assert any('class_0, class_1' in m for m in warnings_seen)

    named = dict(options,
                 **{'test_dataloader.dataset.metainfo': dict(classes=NAMES)})
    model = init_model(CONFIG, bare, cfg_options=named)
    assert model.dataset_meta['classes'] == tuple(NAMES)

    # The checkpoint's names win over the config's, and must fit.
    path = save_checkpoint(tmp_path / 'named.pth', state, DEMO_CATEGORIES)
    model = init_model(CONFIG, path, cfg_options=named)
    assert model.dataset_meta['classes'] == tuple(DEMO_CATEGORIES)
    path = save_checkpoint(tmp_path / 'short.pth', state, NAMES[:5])
    with pytest.raises(InvalidInputError, match='names 5 classes'):
        init_model(CONFIG, path, cfg_options=options)


def test_checkpoint_embeddings_win_over_another_file(tmp_path, vectors_file,
                                                     warnings_seen):
    options = tiny_cfg_options(
        str(tmp_path), **{'model.neck.word_vectors': str(vectors_file)})
    state = init_model(CONFIG, cfg_options=options).state_dict()
    trained = torch.full((12, 16), 0.25)
    state['neck.embeddings'] = trained
    path = save_checkpoint(tmp_path / 'model.pth', state, NAMES)
    model = init_model(CONFIG, path, cfg_options=options)
    assert torch.equal(model.neck.embeddings, trained)
    assert any('differs from the embeddings' in m for m in warnings_seen)


def test_config_object_and_bad_devices(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    options = tiny_cfg_options(str(tmp_path))
    model = init_model(cfg, cfg_options=options)
    assert model.neck.feature_proj.in_features == 64
    assert cfg.model.neck.feat_channels == 256  # the caller's is untouched
    with pytest.raises(InvalidInputError, match='is not a device'):
        init_model(CONFIG, device='gpu0', cfg_options=options)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match='no CUDA GPU'):
            init_model(CONFIG, device='cuda', cfg_options=options)
    with pytest.raises(InvalidInputError, match='does not exist'):
        init_model(str(tmp_path / 'nothing.py'))


class Payload:
    """An object a checkpoint should never bring along."""


def test_checkpoint_is_read_with_the_safe_loader(tmp_path):
    options = tiny_cfg_options(str(tmp_path))
    state = init_model(CONFIG, cfg_options=options).state_dict()
    path = str(tmp_path / 'odd.pth')
    torch.save({'meta': {'extra': Payload()}, 'state_dict': state}, path)
    with pytest.raises(InvalidInputError, match='Cannot read checkpoint'):
        init_model(CONFIG, path, cfg_options=options)


def test_checkpoint_embeddings_of_another_width(tmp_path):
    """A model trained on 512-d (CLIP) embeddings, config without
    embed_dims: the checkpoint alone gives the width and the vectors."""
    vectors = np.random.default_rng(1).normal(size=(12, 512)).astype('f4')
    path = tmp_path / 'clip_vectors.npy'
    np.save(path, vectors)
    options = tiny_cfg_options(
        str(tmp_path), **{
            'model.neck.word_vectors': str(path),
            'model.neck.embed_dims': None
        })
    trained = init_model(CONFIG, cfg_options=options)
    assert trained.neck.embedding_proj.in_features == 512
    checkpoint = save_checkpoint(tmp_path / 'model.pth', trained.state_dict(),
                                 NAMES)
    path.unlink()

    model = init_model(CONFIG, checkpoint, cfg_options=options)
    assert torch.equal(model.neck.embeddings, torch.from_numpy(vectors))
    for got, want in zip(_outputs(model), _outputs(trained)):
        assert torch.equal(got, want)
