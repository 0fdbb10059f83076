"""What every benchmark in this folder records about the machine, and how it writes its JSON."""
import json
import os
import platform
import resource

import torch


def environment() -> dict:
    """Machine facts that make a timing comparable (or not) with another run's."""
    return {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "machine": platform.processor() or platform.machine(),
    }


def write_report(path: str, report: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        json.dump(report, out, indent=2)
    print(f"wrote {path}")


def resident_mib() -> float:
    """This process's resident set size now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_resident_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
