"""One line naming the torch build and the device a benchmark runs on (used by bench/gpu.sh);
exits with status 2 and one line when the device is not there.

    python bench/device_info.py cuda
"""

from __future__ import annotations

import sys

import torch

from agents.factory import check_device
from composable_rl.config import ConfigError


def describe(device: str) -> str:
    """'torch VERSION on NAME' for `device`; a ConfigError (`check_device`) where this machine
    lacks it."""
    check_device(device)
    if torch.device(device).type == "cuda":
        return f"torch {torch.__version__} on {torch.cuda.get_device_name(torch.device(device))}"
    return f"torch {torch.__version__} on the CPU ({torch.get_num_threads()} threads)"


if __name__ == "__main__":
    try:
        print(describe(sys.argv[1] if len(sys.argv) > 1 else "cuda"))
    except ConfigError as err:
        print(f"device_info.py: {err}", file=sys.stderr)
        sys.exit(2)
