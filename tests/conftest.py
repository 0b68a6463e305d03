"""Shared test settings: hypothesis runs derandomized, so every test run draws the same cases;
no GPU is detected for the default budget; user tasks loaded by a test are forgotten after it;
torch runs one thread."""

import os

# One torch thread, in this process and in every `lgt` subprocess a test starts (before torch
# is imported anywhere). The tests' models are tiny: a second thread only adds synchronisation,
# and on a busy machine its spin-waiting made an 8-step run 10x slower (29 s against 283 s).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "deterministic",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("deterministic")


@pytest.fixture(autouse=True)
def _no_gpu_detected(monkeypatch):
    """Every test sees a machine without a GPU unless it says otherwise, so that the default
    budget (`cpu`), and with it run folders and keys, are the same on every machine."""
    from lgtransfer.config import files

    monkeypatch.setattr(files, "has_gpu", lambda: False)


@pytest.fixture(autouse=True)
def _fresh_user_tasks():
    """User tasks a test loads are forgotten after it, as they would be by a new process."""
    from lgtransfer.tasks import TASKS, user

    tasks, sources, files = dict(TASKS), dict(user.SOURCES), dict(user._files)
    yield
    for store, saved in ((TASKS, tasks), (user.SOURCES, sources), (user._files, files)):
        store.clear()
        store.update(saved)
