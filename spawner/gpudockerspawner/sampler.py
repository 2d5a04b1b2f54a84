"""Where the GPUs are: each GPU's utilisation and memory, read from the driver every few seconds and served as
JSON to the hub's GPU service. Python's standard library only: it runs in any image with a Python 3.

It runs in a small container of its own on each GPU host (one host: beside the hub; a cluster: on every GPU node),
given the driver's utilities and no compute (``--gpus all,capabilities=utility``: the NVIDIA runtime mounts
nvidia-smi into it), with nothing else of the host. One nvidia-smi runs for as long as the sampler does, in its loop
mode (``-l``): the driver is opened once, not at every sample::

    python -m gpudockerspawner.sampler --port 9400 --interval 5

``GET /`` answers ``{"node": ..., "interval": 5, "gpus": [{"index", "uuid", "name", "utilization",
"memory_used", "memory_total", "at"}, ...]}`` (utilisation in percent, memory in bytes, ``at`` the sample's Unix
time; a figure the driver does not give is null). A GPU in MIG mode is followed by its MIG devices (``"index":
"0:1"``, with ``"profile"`` and ``"parent"``, the GPU's UUID): their memory comes from ``nvidia-smi -q -x``, read at
each interval where a GPU is in MIG mode, and their utilisation is null (NVML measures none per MIG device). The hub
reaches it on the hub's network, where no user container may.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUERY = "index,uuid,name,utilization.gpu,memory.used,memory.total"
MIB = 1024 * 1024
log = logging.getLogger("gpu-sampler")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_line(line: str, at: float) -> dict | None:
    """One line of ``nvidia-smi --query-gpu=QUERY --format=csv,noheader,nounits``; None for anything else."""
    fields = [field.strip() for field in line.split(",")]
    if len(fields) != 6 or not fields[0].isdigit():
        return None
    index, uuid, name, utilization, used, total = fields
    used_mib, total_mib = _number(used), _number(total)
    return {
        "index": index,
        "uuid": uuid,
        "name": name,
        "utilization": _number(utilization),
        "memory_used": None if used_mib is None else int(used_mib * MIB),
        "memory_total": None if total_mib is None else int(total_mib * MIB),
        "at": at,
    }


class Sampler:
    """The latest figures of each GPU, from one long-running ``nvidia-smi -l``; started again (after a pause) if it
    ends."""

    def __init__(self, interval: int, command: str = "nvidia-smi"):
        self.interval = interval
        self.command = command
        self.gpus: dict[str, dict] = {}
        self.migs: dict[str, dict] = {}
        self.error: str | None = None
        self.lock = threading.Lock()
        self._stopped = threading.Event()
        self._process: subprocess.Popen | None = None

    def _ask(self, *arguments: str) -> str:
        return subprocess.run([self.command, *arguments], capture_output=True, text=True, errors="replace",
                              timeout=max(30, self.interval * 4), check=True).stdout

    def run_migs(self) -> None:
        """The MIG devices' memory, every interval, where the driver lists any (``-L`` once, then ``-q -x``)."""
        try:
            from gpudockerspawner.nvidia import DriverOutputError, parse_listing, parse_query
        except ImportError:
            # Run as a lone script (a cluster's GPU nodes get this file alone): whole GPUs' figures only.
            log.info("MIG devices' memory not read: gpudockerspawner.nvidia is not beside this script")
            return
        try:
            listed = [gpu for gpu in parse_listing(self._ask("-L")) if gpu.migs]
        except (OSError, subprocess.SubprocessError, DriverOutputError) as error:
            log.warning("no MIG devices read: %s", error)
            return
        while listed:
            try:
                self.take_migs(listed, parse_query(self._ask("-q", "-x")), time.time())
            except (OSError, subprocess.SubprocessError, DriverOutputError) as error:
                log.warning("MIG devices' memory not read: %s", error)
            time.sleep(self.interval)

    def take_migs(self, listed, queried: dict, at: float) -> None:
        samples = {}
        for gpu in listed:
            figures = queried.get(gpu.uuid)
            for mig_index, profile, uuid in gpu.migs:
                total, used = figures.mig_memory.get(mig_index, (None, None)) if figures else (None, None)
                samples[uuid] = {"index": f"{gpu.index}:{mig_index}", "uuid": uuid, "name": gpu.model,
                                 "profile": profile, "parent": gpu.uuid, "utilization": None,
                                 "memory_used": None if used is None else used * MIB,
                                 "memory_total": None if total is None else total * MIB, "at": at}
        with self.lock:
            self.migs = samples

    def run(self) -> None:
        """Sample until ``stop``."""
        while not self._stopped.is_set():
            try:
                process = self._process = subprocess.Popen(
                    [self.command, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits", "-l", str(self.interval)],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            except OSError as error:
                self.error = f"{self.command}: {error.strerror}"
            else:
                for raw in process.stdout:
                    self.take(raw.strip())
                if self._stopped.is_set():
                    break
                self.error = self.error or f"{self.command} ended (exit status {process.wait()})"
            log.warning("no samples: %s; trying again in %d s", self.error, self.interval * 2)
            self._stopped.wait(self.interval * 2)

    def stop(self) -> None:
        """End ``run``, and the ``nvidia-smi -l`` it reads, which would otherwise outlive it."""
        self._stopped.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=10)

    def take(self, line: str) -> None:
        sample = parse_line(line, time.time())
        with self.lock:
            if sample is None:
                self.error = line or self.error
                return
            self.error = None
            self.gpus[sample["uuid"]] = sample

    def report(self, node: str) -> dict:
        """Every GPU in the driver's order, a GPU in MIG mode followed by its MIG devices."""
        with self.lock:
            figures = list(self.gpus.values()) + list(self.migs.values())
            return {"node": node, "interval": self.interval, "error": self.error,
                    "gpus": sorted(figures, key=lambda gpu: [int(part) for part in gpu["index"].split(":")])}


def handler(sampler: Sampler, node: str) -> type[BaseHTTPRequestHandler]:
    class Report(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps(sampler.report(node)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 - the hub asks every few seconds: no access log
            pass

    return Report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gpudockerspawner.sampler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9400, help="port to serve the figures on (default 9400)")
    parser.add_argument("--interval", type=int, default=5, help="seconds between samples (default 5)")
    parser.add_argument("--node", default=os.environ.get("GPU_SAMPLER_NODE") or socket.gethostname(),
                        help="the host's name in the figures (default $GPU_SAMPLER_NODE, else the hostname)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    # Docker stops the container with SIGTERM: end at once (nvidia-smi, its child, goes with the container).
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sampler = Sampler(args.interval)
    threading.Thread(target=sampler.run, daemon=True).start()
    threading.Thread(target=sampler.run_migs, daemon=True).start()
    server = ThreadingHTTPServer(("", args.port), handler(sampler, args.node))
    log.info("sampling the GPUs every %d s, serving on port %d", args.interval, args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
