"""The manager loads boto3's data for the first push-model session ahead of time, once."""

from __future__ import annotations

import threading

from alien.manager import debug_credentials
from alien.platforms.aws import credentials


def test_preparing_loads_the_sts_model_once_in_a_thread_of_its_own() -> None:
    debug_credentials.prepare_in_background()
    debug_credentials.prepare_in_background()  # while the first runs: no second thread
    workers = [t for t in threading.enumerate() if t.name == "alien-aws-prepare"]
    assert len(workers) <= 1
    assert debug_credentials._prepared.wait(timeout=60)
    for worker in workers:
        worker.join(timeout=10)
    session = credentials._shared_session
    assert session is not None
    assert "sts" in session.get_available_services()
    debug_credentials.prepare_in_background()  # done already: nothing starts
    assert not [t for t in threading.enumerate() if t.name == "alien-aws-prepare"]
