"""Process-wide CPU settings that the command-line tools apply once, before any tensor work."""

from __future__ import annotations

import ctypes
import sys

import torch

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
HEAP_UP_TO = 32 << 20  # glibc's largest mmap threshold on 64-bit: buffers up to 32 MiB
KEEP_FREE = 1 << 30  # free heap memory kept instead of handed back to the kernel


def configure_cpu() -> bool:
    """Flushes denormals to zero and keeps freed memory in glibc's heap; True if malloc was tuned.

    Every step allocates and frees batch-sized buffers (observations, activations, gradients).
    By default glibc maps each one above 128 KiB afresh and returns it on free, so every step
    page-faults its buffers in again: about 2,600 faults per step of 4096 envs with planes
    observations, which made that step three times slower. Serving them from a heap that keeps
    its free memory removes the faults. Denormals in Adam's state would otherwise cost CPU time.
    """
    torch.set_flush_denormal(True)
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_UP_TO)) and bool(
        mallopt(M_TRIM_THRESHOLD, KEEP_FREE)
    )
