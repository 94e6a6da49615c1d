import os
import os.path as osp

import pytest
import torch

from tests.log_capture import collect_warnings

# Under pytest-xdist (`-n 2`) every worker runs its share of the suite: the
# tools the tests start get one thread each, so that the workers' processes
# share the cores instead of each taking all of them.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ.setdefault('OMP_NUM_THREADS', '1')


@pytest.fixture(autouse=True, scope='session')
def _one_torch_thread():
    """The unit tests use tiny tensors: one thread avoids oversubscribing a
    busy 2-core machine (subprocess runs keep their own setting)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def warnings_seen():
    """WARNING (and above) messages of a fresh current MMLogger."""
    with collect_warnings('sarb_test_warnings') as messages:
        yield messages


@pytest.fixture(scope='session')
def tiny_sarb_run(tmp_path_factory):
    """One epoch of the demo SARB config at tiny size (32 training and 8
    validation images), trained once per session for the tests that only
    read it: its work dir, the config tools/train.py dumped there (as a
    user would use it), the checkpoint and the generated data root."""
    from tests.test_tools.tiny import run_tool, tiny_options
    root = tmp_path_factory.mktemp('tiny_sarb')
    data_root, work_dir = str(root / 'data'), str(root / 'work')
    config = 'configs/sarb_r18_demo_p10.py'
    run_tool(
        ['tools/train.py', config, '--work-dir', work_dir, '--cfg-options'] +
        tiny_options(data_root, epochs=1, num_train=32, num_val=8))
    return dict(
        work_dir=work_dir,
        config=osp.join(work_dir, osp.basename(config)),
        checkpoint=osp.join(work_dir, 'epoch_1.pth'),
        data_root=data_root)
