"""What people do with the deployed hub, in a real browser over verified HTTPS: the admin's first login,
signing up and being approved, a GPU server with JupyterLab and a notebook that survives, what another
person may not see, a full GPU pool, and sudo for some."""

from __future__ import annotations

import re
import secrets

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from testbed.browser import HubPages, JupyterLab
from testbed.nvidia import FAKE_GPUS
from testbed.wait import until

pytestmark = pytest.mark.slow

ENV_CELL = ('import os; print("NV=" + os.environ["NVIDIA_VISIBLE_DEVICES"] + ";"); '
            'print("CUDA=" + os.environ.get("CUDA_VISIBLE_DEVICES", "none") + ";")')
# The GPU profile's CUDA runtime, loaded as a library in the notebook, reports its version (no device needed).
CUDART_CELL = ('import ctypes, glob, os, sys; '
               'lib = ctypes.CDLL([f for p in sys.path for f in glob.glob(p + '
               '"/nvidia/cuda_runtime/lib/libcudart.so*")][0]); '
               'v = ctypes.c_int(); lib.cudaRuntimeGetVersion(ctypes.byref(v)); print(f"CUDART={v.value};")')


def unique(name: str) -> str:
    """A name no earlier run used: the journeys can run again on a kept hub."""
    return f"{name}-{secrets.token_hex(2)}"


def admin_password(deployment, target) -> str:
    """The password file that the deploy's last lines name, read on the host as an admin would."""
    match = re.search(rf"{re.escape(target.address)}: admin admin logs in with the password in (\S+) \(root only\)",
                      deployment.runs[0].log)
    assert match, "the deploy's closing lines do not name the admin password file"
    return deployment.read(target, match.group(1)).decode().strip()


@pytest.fixture(scope="module")
def people_hub(deployment):
    target = deployment.targets[0]
    return {"target": target, "url": f"https://{target.address}/", "ca": deployment.ca_file(target),
            "api": deployment.hub(target), "admin_password": admin_password(deployment, target)}


@pytest.fixture
def person(people_hub, browsers):
    """A fresh browser on the hub, trusting its local CA as a person who imported it."""

    def open_as():
        return HubPages(browsers([people_hub["ca"]]), people_hub["url"])

    return open_as


def approved_person(people_hub, person, name: str) -> tuple[HubPages, str]:
    """Someone who signed up and whom the admin approved, both in the browser."""
    password = f"{name}-{secrets.token_hex(8)}"
    pages = person()
    assert "information has been sent to the admin" in pages.signup(name, password)
    admin = person()
    admin.logged_in("admin", people_hub["admin_password"])
    admin.authorize(name)
    return pages, password


def test_admin_logs_in_with_the_generated_password_and_sees_users_and_gpus(people_hub, person):
    pages = person()
    pages.logged_in("admin", people_hub["admin_password"])
    pages.browser.open(people_hub["url"] + "hub/admin")
    pages.browser.wait_for_text("admin", css="table")
    # The GPU page: each stand-in GPU as the sampler on this host (Docker 20.10) reads it through the driver.
    def every_gpu_listed() -> str:
        pages.browser.open(people_hub["url"] + "services/gpus/")  # the last round's figures: load it again
        text = pages.browser.wait_for("#gpu-page").text
        return text if text.count("Stand-in GPU") == len(FAKE_GPUS) else ""

    assert "16.0 GiB" in until(every_gpu_listed, 30, "every stand-in GPU on the GPU page", interval=2)
    assert pages.browser.wait_for("#server-table")


def test_nobody_signs_up_under_the_admins_name(person):
    message = person().signup("admin", "an-attackers-long-passphrase")
    assert "already in use" in message


def test_signed_up_person_starts_a_gpu_server_runs_a_notebook_and_finds_it_again(people_hub, person, deployment):
    name = unique("grace")
    password = f"{name}-{secrets.token_hex(8)}"
    pages = person()
    assert "information has been sent to the admin" in pages.signup(name, password)
    pages.login(name, password)
    assert "has not been authorized by an administrator yet" in pages.browser.wait_for_text("authorized")

    admin = person()
    admin.logged_in("admin", people_hub["admin_password"])
    admin.authorize(name)

    pages.logged_in(name, password)
    # Both image profiles, the GPU one first (what a GPU user came for) with what is free; no hardware choice.
    form = pages.browser.wait_for("select[name=image]").text.split("\n")
    assert re.fullmatch(rf"GPU \(CUDA\) — 1 GPU \([0-9] of {len(FAKE_GPUS)} free\)", form[0]), form
    assert form[1:] == ["Standard"], form
    assert not pages.browser.driver.find_elements(By.CSS_SELECTOR, "select[name=gpu]")
    pages.start_server_or_fail("GPU (CUDA)")
    lab = JupyterLab(pages.browser)
    lab.wait_until_loaded()
    lab.new_notebook()
    cudart = lab.run_cell(CUDART_CELL, expect="CUDART=")
    assert re.search(r"CUDART=12\d\d\d;", cudart), cudart
    output = lab.run_cell(ENV_CELL, expect="CUDA=")
    visible = re.search(r"NV=([^;\n]*);", output).group(1)
    cuda = re.search(r"CUDA=([^;\n]*);", output).group(1)

    table = people_hub["api"].get("/services/gpus/api/assignments").json()
    (held,) = [server["gpus"] for server in table["servers"] if server["user"] == name]
    assert len(held) == 1 and held[0].startswith("GPU-")
    assert visible == cuda == held[0]
    lab.save("gpu-check.ipynb")

    pages.stop_server()
    pages.logout()
    pages.logged_in(name, password)
    pages.start_server_or_fail("Standard")
    lab.wait_until_loaded()
    lab.open_notebook(people_hub["url"], name, "gpu-check.ipynb")
    assert any("NVIDIA_VISIBLE_DEVICES" in source for source in lab.cell_sources())
    # The standard profile holds no GPU.
    table = people_hub["api"].get("/services/gpus/api/assignments").json()
    assert [server["gpus"] for server in table["servers"] if server["user"] == name] == [[]]
    # Having served JupyterLab, the notebook and its kernel, the server has not loaded the hub's database layer,
    # which the image's patch keeps out of single-user servers (roles/images/files/jupyterhub-singleuser-no-db.patch):
    # SQLAlchemy's compiled modules are not among the server's mappings, aiohttp's (JupyterHub's client) are.
    container = f"$(docker ps -q --filter label=gpudockerspawner.owner={name}/)"
    maps = deployment.output(people_hub["target"], f"docker exec -u jovyan {container} cat /proc/1/maps")
    assert "site-packages/aiohttp/" in maps, maps[-2000:]
    assert "site-packages/sqlalchemy/" not in maps


def test_another_person_sees_neither_the_admin_pages_nor_someone_elses_server(people_hub, person):
    api = people_hub["api"]
    ivy, heidi = unique("ivy"), unique("heidi")
    api.ensure_user(ivy)
    api.start_server(ivy)
    pages, password = approved_person(people_hub, person, heidi)
    pages.logged_in(heidi, password)
    refusals = {
        "hub/admin": "requires any of [admin-ui]",
        "services/gpus/api/assignments": "Only the hub's admins see everyone's GPUs.",
        "services/gpus/usage": "Only the hub's admins see everyone's GPUs.",
        f"user/{ivy}/lab": f"You do not have permission to access Server at /user/{ivy}/",
    }
    for path, refusal in refusals.items():
        pages.browser.open(people_hub["url"] + path)
        assert "403" in pages.browser.wait_for_text(refusal), path
    # The GPU page shows her the free count and her own GPUs only: not Ivy's.
    pages.browser.open(people_hub["url"] + "services/gpus/")
    assert re.fullmatch(rf"\d of {len(FAKE_GPUS)} GPUs free.*", pages.browser.wait_for("#gpu-free").text)
    assert pages.browser.wait_for("#gpu-none-held").text == "You hold no GPU now."
    assert ivy not in pages.browser.text()
    api.stop_server(ivy)


def test_with_every_gpu_taken_a_person_asking_for_one_reads_why(people_hub, person):
    api = people_hub["api"]
    held = api.get("/services/gpus/api/assignments").json()["gpus"]
    holders = [unique("holder") for _ in range(len(FAKE_GPUS) - len(held))]
    assert holders, f"every GPU is held before the test: {held}"
    *first, last = holders
    for holder in holders:
        api.ensure_user(holder)
    for holder in first:
        api.start_server(holder)
    try:
        judy = unique("judy")
        pages, password = approved_person(people_hub, person, judy)
        pages.logged_in(judy, password)
        # Her form says one GPU is free; while she reads it, someone takes it; she presses Start all the same.
        assert pages.browser.wait_for("#gpu-availability").text == f"1 of {len(FAKE_GPUS)} GPUs free"
        api.start_server(last)
        pages.browser.select("select[name=image]", "GPU (CUDA)")
        pages.browser.click("#spawn_form input[type=submit], #spawn_form button[type=submit]")
        text = pages.browser.wait_for_text("GPUs are in use")
        assert f"All {len(FAKE_GPUS)} GPUs are in use; try again later, or start a CPU-only server." in text
        # The form, loaded again, says so before Start: the GPU profile greyed out, and why.
        pages.browser.open(f"{pages.base}/hub/spawn")
        assert pages.browser.wait_for("#gpu-availability").text == (
            f"0 of {len(FAKE_GPUS)} GPUs free. A GPU server cannot start now. (All {len(FAKE_GPUS)} GPUs are in use.)")
        option = pages.browser.driver.find_element(By.CSS_SELECTOR, 'select[name=image] option[value="GPU (CUDA)"]')
        assert option.get_attribute("disabled") and option.text == "GPU (CUDA) — 1 GPU (none free now)"
        assert Select(pages.browser.driver.find_element(By.CSS_SELECTOR, "select[name=image]")
                      ).first_selected_option.text == "Standard"
    finally:
        for holder in holders:
            api.stop_server(holder)


def test_sudo_inside_ones_container_only_for_sudo_groups(people_hub, person):
    api = people_hub["api"]
    results = {}
    ken, lea = unique("ken"), unique("lea")
    for name, in_group in ((ken, True), (lea, False)):
        pages, password = approved_person(people_hub, person, name)
        pages.logged_in(name, password)
        if in_group:  # an admin puts them in the group once they have logged in
            api.api("POST", "/groups/sudoers", json={"users": []})
            api.api("POST", "/groups/sudoers/users", json={"users": [name]}).raise_for_status()
        pages.start_server_or_fail("Standard")
        lab = JupyterLab(pages.browser)
        lab.wait_until_loaded()
        lab.new_notebook()
        output = lab.run_cell('!sudo -n true 2>&1 && echo "SUDO=yes;" || echo "SUDO=no;"', expect="SUDO=")
        results[name] = re.search(r"SUDO=(yes|no);", output).group(1)
        api.stop_server(name)
    assert results == {ken: "yes", lea: "no"}
