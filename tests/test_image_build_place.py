"""Where a host's images are built: on the controller where its engine answers and builds for the host's
architecture, else on the host, with the deploy saying why."""

from __future__ import annotations

import pytest

from roles.images import build_where


@pytest.mark.parametrize("engine_arch, host_arch", [("x86_64", "x86_64"), ("amd64", "x86_64"),
                                                    ("aarch64", "aarch64"), ("arm64", "aarch64")])
def test_a_controller_of_the_hosts_architecture_builds_its_images(engine_arch, host_arch):
    assert build_where("controller", "26.1.5", engine_arch, host_arch) == ("controller", "")


def test_an_apple_silicon_controller_leaves_an_x86_64_server_to_build_its_own():
    where, why = build_where("controller", "27.3.1", "aarch64", "x86_64")
    assert where == "target"
    assert why == ("the controller's Docker engine builds aarch64 images and this host is x86_64: it builds its own "
                   "images")


def test_no_engine_on_the_controller_or_target_builds_leave_it_to_the_host():
    assert build_where("controller", None, "", "x86_64") == (
        "target", "the controller has no Docker engine that answers: each host builds its own images")
    assert build_where("target", "26.1.5", "aarch64", "x86_64") == ("target", "")
