import sys
import os

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dynet as dy  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_graph():
    """Every test starts with a new computation graph."""
    dy.renew_cg()
    yield
