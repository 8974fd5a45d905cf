import pytest

from tests.oracle.refdynet import load


@pytest.fixture(scope="session")
def ref():
    """The reference DyNet module; the test is skipped where dynet38 is not installed."""
    module = load()
    if module is None:
        pytest.skip("the reference DyNet (dynet38) is not installed: python -m tests.oracle.install")
    return module
