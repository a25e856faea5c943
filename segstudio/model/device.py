"""Choosing the compute device: CUDA, else Apple MPS, else CPU."""

from __future__ import annotations

import torch


def resolve_device(preference: str = "auto") -> tuple[torch.device, str | None]:
    """The device to use and, when the preferred one is missing, a warning saying so."""
    pref = getattr(preference, "value", preference)
    has_cuda = torch.cuda.is_available()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if pref == "auto":
        return torch.device("cuda" if has_cuda else "mps" if has_mps else "cpu"), None
    if pref == "cuda" and not has_cuda:
        return torch.device("cpu"), "CUDA was requested but no CUDA GPU is available; using the CPU."
    if pref == "mps" and not has_mps:
        return torch.device("cpu"), "MPS was requested but is not available; using the CPU."
    return torch.device(pref), None


def device_name(device: torch.device) -> str:
    """A human-readable name: the GPU model, "Apple GPU (MPS)" or "CPU (n threads)"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def describe_device(preference: str = "auto") -> tuple[str, str]:
    """(kind, name) of the device a run with this preference would use, e.g. ("cpu", "CPU (2 threads)")."""
    device, _ = resolve_device(preference)
    return device.type, device_name(device)
