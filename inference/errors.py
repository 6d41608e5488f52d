"""Errors raised by training and inference."""

from __future__ import annotations

__all__ = ["TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """A training loss became NaN or infinite; training stopped instead of returning garbage."""
