"""How a failed request is described, from a real connection to a local port nothing listens on."""

from __future__ import annotations

import pytest
import requests

from loopctl.checks import http


def test_refused_connection_is_described_without_the_url():
    with pytest.raises(requests.RequestException) as caught:
        requests.get("http://127.0.0.1:9/hook/secret-token", timeout=2)
    assert http.describe(caught.value, 2) == "connection refused"
