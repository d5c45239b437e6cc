"""Choose the PyTorch device for course code: `COURSE_DEVICE` first, then MPS, CUDA, CPU."""

from __future__ import annotations

import os

import torch

KNOWN_DEVICES = ("cpu", "cuda", "mps")


def _is_available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    return torch.backends.mps.is_available()


def get_device(name: str | None = None) -> torch.device:
    """Return the device named by `name`, else by the `COURSE_DEVICE` variable, else the best one present.

    The search order without a name is MPS (Apple Silicon), CUDA, CPU. A name may carry an index
    ("cuda:1"). An unknown name, or a known one that this machine lacks, raises ValueError: a silent
    fallback to the CPU would hide a misconfigured machine.
    """
    requested = name if name is not None else os.environ.get("COURSE_DEVICE", "").strip()
    if requested:
        kind = requested.split(":", 1)[0].lower()
        if kind not in KNOWN_DEVICES:
            raise ValueError(f"unknown device {requested!r}: expected one of {', '.join(KNOWN_DEVICES)}")
        if not _is_available(kind):
            raise ValueError(f"device {requested!r} was requested but is not available on this machine")
        return torch.device(requested.lower())

    for kind in ("mps", "cuda"):
        if _is_available(kind):
            return torch.device(kind)
    return torch.device("cpu")


def supports_float64(device: torch.device | str) -> bool:
    """MPS has no float64; every other device does."""
    return torch.device(device).type != "mps"
