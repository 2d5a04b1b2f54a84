"""The test bed's stand-in driver prints what NVIDIA's driver prints (the real layouts of
spawner/tests/fixtures/nvidia-smi), so that the deploy, the sampler and the spawner cannot tell it from the driver:
a host with two models, one GPU in MIG mode with MIG devices of two profiles."""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from gpudockerspawner.nvidia import parse_query, units
from jupyterhub_gpu.facts import GPUInventory, NvidiaGPUs
from testbed.nvidia import FAKE_GPUS, LAB_GPUS, fake_nvidia_smi

FIXTURES = Path(__file__).resolve().parents[1] / "spawner" / "tests" / "fixtures" / "nvidia-smi"


@pytest.fixture
def lab(tmp_path):
    """The stand-in nvidia-smi of the lab host, and where a test writes its GPUs' figures."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text(fake_nvidia_smi(LAB_GPUS))
    smi.chmod(0o755)
    figures = tmp_path / "figures"
    figures.mkdir()

    def run(*arguments: str) -> str:
        return subprocess.run([str(smi), *arguments], capture_output=True, text=True, check=True, timeout=30,
                              env={**os.environ, "NVIDIA_STANDIN_FIGURES": str(figures)}).stdout

    return run, figures


def paths(xml: str) -> list[str]:
    """Every element's path, in order: the layout, apart from the values."""
    found = []

    def walk(element, prefix):
        found.append(f"{prefix}/{element.tag}")
        for child in element:
            walk(child, f"{prefix}/{element.tag}")

    walk(ElementTree.fromstring(xml), "")
    return found


def test_the_listing_is_the_drivers_byte_for_byte(lab):
    run, _ = lab
    assert run("-L") == (FIXTURES / "lab-L.txt").read_text()


def test_the_xml_query_has_the_drivers_layout_and_reads_as_the_same_units(lab):
    run, figures = lab
    real = (FIXTURES / "lab-q.xml").read_text()
    stand_in = run("-q", "-x")
    # Every element the stand-in prints is where the driver prints it (the driver prints more, which nobody reads).
    real_paths = set(paths(real))
    assert set(paths(stand_in)) <= real_paths, set(paths(stand_in)) - real_paths
    assert units(run("-L"), stand_in) == units((FIXTURES / "lab-L.txt").read_text(), real)
    # Figures a test writes are the driver's figures: of a MIG device by "<gpu>:<device>", of a GPU by its index.
    (figures / "0:2").write_text("0 2210\n")
    (figures / "1").write_text("87 18211\n")
    queried = parse_query(run("-q", "-x"))
    assert queried["GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45"].mig_memory["2"] == (9728, 2210)
    rtx = queried["GPU-feba7e40-d724-01ff-b00f-3a439a28a6c7"]
    assert (rtx.utilization, rtx.used_mib, rtx.mig) == (87, 18211, False)
    assert queried["GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45"].utilization is None  # N/A in MIG mode, as NVML says
    assert re.search(r"<free>7518 MiB</free>", run("-q", "-x"))  # 9728 - 0 reserved - 2210 used


def test_the_deploys_fact_reads_the_units_with_their_kinds(lab):
    run, _ = lab
    lines = (["smi=/usr/bin/nvidia-smi"] + [f"L={line}" for line in run("-L").splitlines()]
             + [f"X={line}" for line in run("-q", "-x").splitlines()])
    inventory = NvidiaGPUs().process(lines)
    assert inventory.error == "" and [gpu.index for gpu in inventory.gpus] == ["0:0", "0:1", "0:2", "1", "2"]
    assert sorted({gpu.kind for gpu in inventory.gpus}) == [
        "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "NVIDIA A100-SXM4-80GB MIG 3g.40gb", "NVIDIA GeForce RTX 4090"]
    broken = NvidiaGPUs().process(["smi=/usr/bin/nvidia-smi", "L=No devices were found", "X=No devices were found"])
    assert broken == GPUInventory("/usr/bin/nvidia-smi", (), "nvidia-smi -L printed a line this deploy cannot read: "
                                                            "'No devices were found'")
    assert NvidiaGPUs().process([]) == GPUInventory()


def test_the_two_stand_in_gpus_of_every_other_target_read_as_before(tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(fake_nvidia_smi())
    smi.chmod(0o755)
    listing = subprocess.run([str(smi), "-L"], capture_output=True, text=True, check=True).stdout
    query = subprocess.run([str(smi), "-q", "-x"], capture_output=True, text=True, check=True).stdout
    assert [(unit.index, unit.uuid, unit.name, unit.memory_mib) for unit in units(listing, query)] == FAKE_GPUS
