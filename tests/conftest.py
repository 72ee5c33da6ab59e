import os
import pytest

os.environ.setdefault("NASREC_LIT_PROGRESS", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end tests (make test-all)")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    "Every test gets its own processed-data cache."
    monkeypatch.setenv("NASREC_LIT_CACHE", str(tmp_path / "cache"))
