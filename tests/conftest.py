"""Test selection: tests that build the whole book, drive the headless browser or run the device check end to
end are marked ``slow`` (``make test-fast`` runs the others in about 2 minutes on 2 cores; ``make test`` runs
everything, with the book build and the smoke notebooks, in about 8)."""

import pytest
import torch

SLOW_FIXTURES = {"built", "widget_book", "rendered", "browser", "device_check_tiny"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def one_torch_thread():
    """One torch thread, as in the sweep's workers and the CLI's subprocesses (2 cores / 2 jobs,
    OMP_NUM_THREADS=1): the reference runs here do the same arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
