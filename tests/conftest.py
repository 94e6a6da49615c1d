import os

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
