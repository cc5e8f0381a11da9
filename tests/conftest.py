"""Test selection: tests that build the whole book or drive the headless browser are marked ``slow``
(``make test-fast`` runs the other 530 in about 2 minutes on 2 cores; ``make test`` runs everything, with the
book build and the smoke notebooks, in about 6)."""

import pytest

SLOW_FIXTURES = {"built", "widget_book", "rendered", "browser"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
