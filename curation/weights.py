"""Identify loaded model weights: a SHA-256 over a torch module's state, whatever file it came from.

In: a `torch.nn.Module` (a Demucs model or bag, a TorchScript speech detector). Out: a hex digest
that changes with any weight and is the same for the same weights loaded from any file or cache.
"""

from __future__ import annotations

import hashlib

import torch


def state_sha256(module: torch.nn.Module) -> str:
    """SHA-256 of `module.state_dict()`: each entry's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
