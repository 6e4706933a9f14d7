"""An apiserver over an embedded store, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apiserver_helpers import apiserver


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    with apiserver(tmp_path_factory.mktemp("apiserver")) as url:
        yield url
