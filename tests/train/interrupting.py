"""A Ctrl-C at a chosen training step, for the resume tests."""

from collections.abc import Callable

import pytest


def interrupt_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> Callable[[], None]:
    """Make the engine raise KeyboardInterrupt as it augments the step-th batch; return the undo."""
    from cnnlab.train import engine

    real, calls = engine.augment_batch, {"n": 0}

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(engine, "augment_batch", interrupted)
    return lambda: monkeypatch.setattr(engine, "augment_batch", real)
