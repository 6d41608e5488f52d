"""Device and dtype resolution: ``device="auto"`` picks CUDA when present."""

from __future__ import annotations

__all__ = ["resolve_device"]

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn a user's device argument into a :class:`torch.device`.

    ``"auto"`` (or ``None``) picks ``cuda`` when a GPU is visible and ``cpu`` otherwise;
    anything else is passed to :class:`torch.device`, so ``"cuda:1"`` works. Asking for
    CUDA on a machine without it raises a :class:`ValueError` that says so.

    Example:
        >>> from pyrocausal.inference import resolve_device
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("auto").type in {"cpu", "cuda"}
        True
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was asked for but torch sees no CUDA device "
            f"(torch {torch.__version__}); install a CUDA build of torch or use device='cpu'"
        )
    return dev
