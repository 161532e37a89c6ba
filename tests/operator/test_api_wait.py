"""The operator waits for an API server that is down before it hands over to kopf
(kopf never retries resource discovery after its last network retry)."""

from __future__ import annotations

import logging

import kubernetes
import pytest
import urllib3

from channelmodel.kube import API_WAIT_BACKOFF, wait_for_api_server
from tests.support.processes import free_port


def test_waits_with_backoff_while_nothing_answers(caplog: pytest.LogCaptureFixture) -> None:
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"  # nothing listens
    configuration.retries = False
    slept: list[float] = []
    with (
        kubernetes.client.ApiClient(configuration) as api_client,
        caplog.at_level(logging.WARNING),
        pytest.raises((urllib3.exceptions.HTTPError, OSError)),
    ):
        wait_for_api_server(
            logging.getLogger("test"), sleep=slept.append, api_client=api_client, attempts=6
        )
    assert slept == [1.0, 2.0, 5.0, 10.0, 10.0]  # the last delay repeats
    assert API_WAIT_BACKOFF[-1] == 10.0
    assert caplog.text.count("does not answer") == 5
    assert "127.0.0.1" not in caplog.text  # no URL in the log
