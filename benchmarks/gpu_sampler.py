"""What sampling the GPUs costs a host: the GPU sampler's CPU with 8 stand-in GPUs, beside a baseline, in one run.

    .venv/bin/python -m benchmarks.gpu_sampler [--seconds 60]

The sampler (``gpudockerspawner.sampler``, as the deploy runs it) reads the test bed's stand-in nvidia-smi for 8
GPUs: one nvidia-smi in loop mode (``-l``), every 5 s (the default) and every 1 s. Baseline: the same sampler
design without loop mode, one nvidia-smi per round (what a cron job or a naive exporter does). The figures are CPU
seconds per hour of sampling, as a share of one core, counting the sampler and everything it ran. The stand-in is a
shell script, costlier per round than the driver's nvidia-smi (which reads NVML from a driver opened once per
process): on a real host the loop's cost is lower still, and the baseline's higher (the driver opened each round).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed.nvidia import fake_gpus, fake_nvidia_smi

TICKS = os.sysconf("SC_CLK_TCK")
SAMPLER = """
import subprocess, sys, time
from gpudockerspawner.sampler import QUERY, Sampler
interval = int(sys.argv[1])
if sys.argv[2] == "loop":
    Sampler(interval).run()
else:  # the baseline: one nvidia-smi per round
    while True:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True).stdout
        time.sleep(interval)
"""


def own_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` itself (utime and stime: fields 14 and 15 of stat, here 11 and 12 after the name)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:13]) / TICKS


def cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and its descendants, those alive and those it (or they) waited for."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime: fields 14-17 of stat, here 11-14 after the name.
    total += sum(int(value) for value in fields[11:15]) / TICKS
    for child in children.read_text().split() if children.exists() else []:
        try:
            total += cpu_seconds(int(child))
        except (FileNotFoundError, ProcessLookupError):
            pass  # ended meanwhile: its CPU is its parent's cutime
    return total


def measure(bin_dir: Path, interval: int, mode: str, seconds: float) -> tuple[float, float]:
    """Share of a core: the sampler with all it ran, and the sampler's Python alone."""
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "NVIDIA_STANDIN_FIGURES": str(bin_dir)}
    process = subprocess.Popen([sys.executable, "-c", SAMPLER, str(interval), mode], env=env)
    try:
        time.sleep(2)  # Python's own start is not sampling
        start, own_start = cpu_seconds(process.pid), own_cpu_seconds(process.pid)
        time.sleep(seconds)
        used, own = cpu_seconds(process.pid) - start, own_cpu_seconds(process.pid) - own_start
    finally:
        process.kill()
        process.wait()
    return used / seconds, own / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long each variant samples (default 60)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        bin_dir = Path(directory)
        smi = bin_dir / "nvidia-smi"
        smi.write_text(fake_nvidia_smi(fake_gpus(8)))
        smi.chmod(0o755)
        for index in range(8):
            (bin_dir / str(index)).write_text(f"{index * 10} {index * 1024}\n")
        print(f"GPU sampler, 8 stand-in GPUs, {args.seconds:g} s per variant, on {os.cpu_count()} cores")
        print(f"{'variant':<44}{'CPU, all (of a core)':>22}{'CPU s per hour':>16}{'its Python alone':>18}")
        results = {}
        for interval in (5, 1):
            for mode, label in (("loop", "one nvidia-smi -l (the sampler)"), ("each", "one nvidia-smi per round")):
                share, own = measure(bin_dir, interval, mode, args.seconds)
                results[(interval, mode)] = share
                print(f"{f'every {interval} s, {label}':<44}{share * 100:>21.3f}%{share * 3600:>16.1f}"
                      f"{own * 100:>17.3f}%")
        for interval in (5, 1):
            loop, each = results[(interval, "loop")], results[(interval, "each")]
            if each:
                print(f"every {interval} s: the sampler uses {loop / each:.2f}x the baseline's CPU")


if __name__ == "__main__":
    main()
