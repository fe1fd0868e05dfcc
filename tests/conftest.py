from pathlib import Path

import pytest

from featlib.utils import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder; tests that need it skip with a reason when it is absent."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is not beside this checkout (set FEATLIB_SHARED to point at it)")
    return path
