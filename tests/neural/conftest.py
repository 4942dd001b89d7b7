"""One torch thread for the neural tests: their networks are tiny, and on a busy machine
two threads wait for each other (a 4.6 s test took 30 s with two threads under load)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
