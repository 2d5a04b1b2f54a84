"""Discovery from what NVIDIA's driver prints (real layouts, spawner/tests/fixtures/nvidia-smi): a GPU in MIG mode is
handed out only as its MIG devices, each a unit of its profile's kind with its memory and its share of the GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpudockerspawner.nvidia import DriverOutputError, Unit, parse_listing, parse_query, share_of, units

FIXTURES = Path(__file__).parent / "fixtures" / "nvidia-smi"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_a_lab_host_with_a_gpu_in_mig_mode_and_two_whole_ones():
    found = units(fixture("lab-L.txt"), fixture("lab-q.xml"))
    assert found == [
        Unit("0:0", "MIG-1e099852-3624-56c0-8064-c5db1211e44f", "NVIDIA A100-SXM4-80GB", 40192, "3g.40gb", 0.4286,
             "GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45"),
        Unit("0:1", "MIG-8243111b-d4c4-587a-a96d-da04583b36e2", "NVIDIA A100-SXM4-80GB", 9728, "1g.10gb", 0.1429,
             "GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45"),
        Unit("0:2", "MIG-169f1837-b996-59aa-9ed5-b0a3f99e88a6", "NVIDIA A100-SXM4-80GB", 9728, "1g.10gb", 0.1429,
             "GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45"),
        Unit("1", "GPU-feba7e40-d724-01ff-b00f-3a439a28a6c7", "NVIDIA GeForce RTX 4090", 24564),
        Unit("2", "GPU-f124aa59-d406-d45b-9481-8fcd694e6c9e", "NVIDIA GeForce RTX 4090", 24564),
    ]
    # Never the GPU in MIG mode whole: its UUID is no unit.
    assert "GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45" not in {unit.uuid for unit in found}
    assert [unit.kind for unit in found[:2]] == ["NVIDIA A100-SXM4-80GB MIG 3g.40gb",
                                                 "NVIDIA A100-SXM4-80GB MIG 1g.10gb"]
    assert (found[1].label, found[3].label) == ("MIG 1g.10gb slice of an A100-SXM4-80GB", "GeForce RTX 4090")


def test_the_query_reads_memory_per_mig_device_and_no_utilisation_for_a_gpu_in_mig_mode():
    queried = parse_query(fixture("lab-q.xml"))
    a100 = queried["GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45"]
    assert (a100.mig, a100.utilization, a100.mig_memory) == (True, None, {"0": (40192, 6214), "1": (9728, 13),
                                                                          "2": (9728, 2210)})
    rtx = queried["GPU-feba7e40-d724-01ff-b00f-3a439a28a6c7"]
    assert (rtx.mig, rtx.utilization, rtx.memory_mib, rtx.used_mib, rtx.mig_memory) == (False, 87, 24564, 18211, {})


def test_the_user_guides_listing_and_a_pre_r470_one():
    (guide,) = parse_listing(fixture("user-guide-L.txt"))
    assert (guide.model, len(guide.migs), guide.migs[6]) == (
        "A100-SXM4-40GB", 7, ("6", "1g.5gb", "MIG-7df6b45c-a92d-5e09-8540-a6b389968c31"))
    (old,) = parse_listing(fixture("pre-r470-L.txt"))
    assert old.migs[1] == ("1", "3g.20gb", "MIG-GPU-e86cb44c-6756-fd30-cd4a-1e6da3caf9b0/2/0")


def test_shares_follow_the_models_compute_slices():
    assert share_of("1g.10gb", "NVIDIA A100-SXM4-80GB") == round(1 / 7, 4)
    assert share_of("2g.12gb", "NVIDIA A30") == 0.5  # an A30 has four slices
    assert share_of("1c.3g.20gb", "NVIDIA A100-SXM4-40GB") == round(1 / 7, 4)  # one compute instance of a 3g
    assert share_of("1g.24gb+me", "NVIDIA RTX PRO 6000 Blackwell Server Edition") == 0.25
    assert share_of("odd", "X", memory_mib=2048, gpu_memory_mib=8192) == 0.25


def test_output_it_cannot_read_is_said_in_words():
    with pytest.raises(DriverOutputError, match="nvidia-smi -L printed a line this deploy cannot read: 'No devices"):
        parse_listing("No devices were found\n")
    with pytest.raises(DriverOutputError, match="nvidia-smi -q -x printed no XML"):
        parse_query("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    with pytest.raises(DriverOutputError, match="says nothing of GPU 1"):
        units(fixture("lab-L.txt"), fixture("lab-q.xml").replace("GPU-feba7e40", "GPU-00000000"))


def test_gpu_ids_by_hand_name_units_and_a_gpu_in_mig_mode_is_its_mig_devices():
    from gpudockerspawner.nvidia import named

    found = units(fixture("lab-L.txt"), fixture("lab-q.xml"))
    slices = ["MIG-1e099852-3624-56c0-8064-c5db1211e44f", "MIG-8243111b-d4c4-587a-a96d-da04583b36e2",
              "MIG-169f1837-b996-59aa-9ed5-b0a3f99e88a6"]
    assert named(["0"], found) == (slices, [])
    assert named(["GPU-36c9561a-02ef-5c4d-3733-f0a56c42dc45", slices[1]], found) == (slices, [])
    assert named(["2", slices[2], "7"], found) == (["GPU-f124aa59-d406-d45b-9481-8fcd694e6c9e", slices[2]], ["7"])
