import pytest
import torch


@pytest.fixture(autouse=True, scope='session')
def _one_torch_thread():
    """The unit tests use tiny tensors: one thread avoids oversubscribing a
    busy 2-core machine (subprocess runs keep their own setting)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
