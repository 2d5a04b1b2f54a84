"""The WSL2 tutorial (docs/tutorials/local.md), done as a reader does it: its commands, taken from the page in
order, typed by a user with sudo into a fresh WSL2 stand-in (systemd, as Ubuntu's distribution boots) with stand-in
GPUs, each checked for what the page says it does. A change to the page is a change to this test.

What a reader's machine has and the test bed's does not is set up first, as such a machine has it: a pip that
trusts the host's CA store (behind this test bed's TLS-inspecting proxy), and the inventory data that names the
test bed's stand-ins for NVIDIA's apt repository and a small CUDA profile instead of PyTorch (what the page says to
put in `inventories/local_settings.py`). The code is put where the page's `git clone` would put it."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from testbed import STATE, checkout_files
from testbed.browser import Browser, HubPages, JupyterLab
from testbed.smoke import GPU_TEST_PROFILES
from testbed.targets import HostKind, remove_targets, start_targets
from testbed.wsl import DISTRIBUTION, WSL_SYSTEMD_CONF
from tests.test_wsl import WSL_HOWTO, as_typed, windows_task_created

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "tutorials" / "local.md"
PERSON = "ops"  # the user WSL made, who may use sudo
HOME = f"/home/{PERSON}"
# A step is a bash block marked by the comment before it (invisible on the site and on GitHub alike).
STEP = re.compile(r"<!-- (tutorial-step|tutorial-get-the-code) -->\n```bash\n(.*?)```", re.S)


def steps() -> list[tuple[str, str]]:
    """The page's commands in order: (kind, the block's text)."""
    return STEP.findall(PAGE.read_text())


class Desktop:
    """The stand-in, and a terminal on it: each block runs in a login shell of the person, in the directory the
    previous one left, with WSL's environment; its output goes to a file read back through the engine's archive
    API (an exec's own output can come back empty, docker/docker-py#2042)."""

    def __init__(self, engine, target):
        self.container = engine.containers.get(target.container_id)
        self.target = target
        self.cwd = HOME
        self.count = 0

    def read(self, path: str) -> bytes:
        stream, _ = self.container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            return archive.extractfile(archive.next()).read()

    def type(self, block: str, timeout: int = 3600) -> tuple[int, str]:
        self.count += 1
        log = f"/tmp/tutorial-step-{self.count}.log"
        script = f"set -e\n{block}\npwd > /tmp/tutorial-cwd\n"
        code, _ = self.container.exec_run(
            ["timeout", str(timeout), "bash", "-lc", f"({script}) > {log} 2>&1"], user=PERSON, workdir=self.cwd,
            environment={"WSL_DISTRO_NAME": DISTRIBUTION, "HOME": HOME})
        if code == 0:
            self.cwd = self.read("/tmp/tutorial-cwd").decode().strip()
        return code, self.read(log).decode(errors="replace")

    def as_root(self, command: str) -> None:
        code, output = self.container.exec_run(["sh", "-c", command])
        assert code == 0, output.decode(errors="replace")

    def put_checkout(self, directory: str) -> None:
        """The working tree's files (what `git clone` of this commit gives), owned by the person."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name in checkout_files():
                archive.add(ROOT / name, arcname=f"jupyterhub-gpu/{name}")
        self.as_root(f"mkdir -p {directory}")
        assert self.container.put_archive(str(Path(directory).parent), buffer.getvalue())
        self.as_root(f"chown -R {PERSON}: {directory}")


def results_of(output: str) -> list[str]:
    """pyinfra's Grand total row: operations run, changed (Success), errors, unchanged; '-' for none."""
    (row,) = [line for line in output.splitlines() if line.strip().startswith("Grand total")]
    return row.split()[2:]


@pytest.fixture(scope="module")
def walked(engine, nvidia_repository):
    """The tutorial, walked through on a fresh stand-in: each block of the page with its exit code and output."""
    (target,) = start_targets(engine, 1, prefix="tutorial", wsl_host=True, kinds=[HostKind("bookworm", "systemd")])
    desktop = Desktop(engine, target)
    # Behind a TLS-inspecting proxy, pip trusts the host's CA store, as a company's machines are set up to.
    desktop.as_root("printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf")
    settings = {**nvidia_repository.inventory_data(), "image_profiles": GPU_TEST_PROFILES}
    typed = []
    try:
        for kind, block in steps():
            if kind == "tutorial-get-the-code":
                assert re.fullmatch(r"git clone \S.* ~/jupyterhub-gpu\n", block), block
                desktop.put_checkout(f"{HOME}/jupyterhub-gpu")
                # The reader's settings, in the file the page names: here the test bed's stand-ins.
                mine = f"{HOME}/jupyterhub-gpu/inventories/local_settings.py"
                desktop.as_root(f"cat > {mine} <<'EOF'\nSETTINGS = {settings!r}\nEOF\n"
                                f"chown {PERSON}: {mine}")
                continue
            code, output = desktop.type(block)
            typed.append((block, code, output))
            if code != 0 and "gpu-check" not in block:
                break  # what follows builds on this step
        yield desktop, typed
    finally:
        remove_targets(engine, [target])


def outputs(typed, command: str) -> list[tuple[int, str]]:
    return [(code, output) for block, code, output in typed if command in block]


def test_every_step_of_the_page_runs_as_written(walked):
    _, typed = walked
    assert len(typed) == len([kind for kind, _ in steps() if kind == "tutorial-step"]), \
        f"stopped at:\n{typed[-1][0]}\n{typed[-1][2][-5000:]}"
    for block, code, output in typed:
        if "gpu-check" not in block:
            assert code == 0, f"{block}\n{output[-5000:]}"


def test_the_first_deploy_says_where_the_hub_is_and_the_second_changes_nothing(walked):
    _, typed = walked
    (first_code, first), (again_code, again) = outputs(typed, "sudo bin/deploy-local")
    assert first_code == 0 and "JupyterHub answers at https://" in first, first[-5000:]
    assert f"WSL2: the Windows task jupyterhub-gpu\\{DISTRIBUTION} starts {DISTRIBUTION} with Windows" in first
    _, changed, errors, _ = results_of(again)
    assert (changed, errors) == ("-", "-"), again[-5000:]
    # The CA the page has the reader import is the one both runs point to; neither says it was made anew.
    for output in (first, again):
        assert "browsers trust it once they import the local CA /opt/jupyterhub-gpu/ca/ca.crt" in output
        assert "the local CA was made anew" not in output


def test_on_wsl2_with_systemd_systemd_starts_the_engine_and_windows_starts_the_distribution(walked):
    """What the deploy arranged on a WSL2 host that boots systemd (tests/test_wsl.py has one that does not)."""
    desktop, typed = walked
    ((_, first), _) = outputs(typed, "sudo bin/deploy-local")
    assert ("WSL2 with systemd: the Docker engine is enabled and starts with the distribution") in first
    # systemd starts the engine: wsl.conf is left as the distribution shipped it.
    assert desktop.read("/etc/wsl.conf").decode() == WSL_SYSTEMD_CONF
    code, enabled = desktop.container.exec_run(["systemctl", "is-enabled", "docker.service"])
    assert enabled.decode().strip() == "enabled", (code, enabled)
    # The Windows task, made once (the second deploy made none) and the one the WSL page gives to type.
    created = windows_task_created(desktop.read)
    assert len(created) == 1 and as_typed(created[0]) in WSL_HOWTO.read_text(), created


def test_the_copied_ca_verifies_the_hub_and_the_admin_password_is_read_once(walked):
    _, typed = walked
    ((code, answer),) = outputs(typed, "curl --cacert ~/jupyterhub-ca.crt")
    assert code == 0 and re.search(r'"version": ?"6\.', answer), answer
    ((code, password),) = outputs(typed, "admin-password-admin")
    assert code == 0 and re.fullmatch(r"\S{24}", password.strip()), "the password file holds no password"


def test_the_gpu_check_names_the_link_the_stand_in_cannot_give(walked):
    _, typed = walked
    ((code, output),) = outputs(typed, "bin/gpu-check")
    # The stand-in GPUs get as far as the container runtime: no driver library there to load.
    assert code != 0 and "FAILED at runtime: the driver's libcuda.so.1 is not in the container" in output, \
        output[-5000:]


def test_the_backup_lands_where_the_page_lists_it(walked):
    _, typed = walked
    ((code, listing),) = outputs(typed, "bin/backup")
    assert code == 0 and re.search(r"-rw------- 1 root root \d+ .* @local-\d{8}T\d{6}Z\.tar", listing), listing[-3000:]


def test_the_admin_logs_in_and_starts_a_gpu_server_as_the_page_says(walked):
    desktop, _ = walked
    target = desktop.target
    ca = STATE / "ca" / f"{target.name}.crt"
    ca.parent.mkdir(parents=True, exist_ok=True)
    ca.write_bytes(desktop.read(f"{HOME}/jupyterhub-ca.crt"))
    password = desktop.read("/opt/jupyterhub-gpu/secrets/admin-password-admin").decode().strip()
    # The host's name, as the deploy's closing line gives it (Chromium sends localhost to this machine itself).
    name = "tutorial0"
    browser = Browser(ca_files=[ca], hosts={name: target.address})
    try:
        pages = HubPages(browser, f"https://{name}")
        pages.logged_in("admin", password)
        assert "GPU (CUDA)" in browser.text() and "Standard" in browser.text()
        pages.start_server_or_fail("GPU (CUDA)")
        JupyterLab(browser).wait_until_loaded()
        browser.screenshot("tutorial-local-jupyterlab")
    finally:
        browser.close()
