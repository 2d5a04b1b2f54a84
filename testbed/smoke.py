"""CI smoke deploy: throwaway targets, the real deploy twice (the second must change nothing),
each hub checked over HTTPS through the proxy with a real user server, then torn down.

    bin/ci-smoke [--targets N] [--keep]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker

from testbed import STATE
from testbed import engine as testbed_engine
from testbed.aptrepo import Repository
from testbed.deploy import DeployRun, run_deploy
from testbed.hub import HubClient
from testbed.targets import HostKind, TargetHost, bridge_gateway, remove_targets, start_targets, write_inventory_file

INSTALL_DIR = "/opt/jupyterhub-gpu"
TEST_TOKEN_SCOPES = ["admin:users", "admin:groups", "admin:servers", "admin:server_state", "access:servers",
                     "read:hub", "list:users", "read:users", "access:services", "tokens"]


# The test bed's GPU profile: the CUDA runtime alone (a few MB) instead of PyTorch (several GB), so that the
# suite builds a CUDA image in seconds; the deploy's default stays PyTorch.
GPU_TEST_PROFILES = [
    {"name": "Standard", "cpu_limit": 1, "mem_limit": "2G"},
    {"name": "GPU (CUDA)", "gpu": True, "packages": ["nvidia-cuda-runtime-cu12==12.9.79"]},
]


# Images from Debian 12 whatever the target's release, so that Debian 13 targets share the test bed's image builds.
DEBIAN_12_IMAGES = {"base_image": "debian:bookworm-slim"}


class SmokeFailure(AssertionError):
    pass


@dataclass
class Deployment:
    engine: docker.DockerClient
    targets: list[TargetHost]
    targets_file: Path
    runs: list[DeployRun]
    tokens: dict[str, str] = field(default_factory=dict)

    def read(self, target: TargetHost, path: str) -> bytes:
        """A file of ``target``'s, through the engine's archive API: an exec's output can come back empty when the
        command ends before the engine attaches to it (docker/docker-py#2042; a CI run once read an empty CA)."""
        try:
            stream, _ = self.engine.containers.get(target.container_id).get_archive(path)
        except docker.errors.NotFound as error:
            raise FileNotFoundError(f"{target.name}:{path}: {error.explanation}") from error
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.next()
            if member is None or not member.isfile():
                raise FileNotFoundError(f"{target.name}:{path}: not a regular file")
            return archive.extractfile(member).read()

    def run(self, target: TargetHost, command: str) -> str:
        """Run a shell command on ``target`` as root; what it printed (it must succeed)."""
        code, output = self.engine.containers.get(target.container_id).exec_run(["sh", "-c", command])
        assert code == 0, f"{target.name}: {command}: {output.decode(errors='replace')}"
        return output.decode().strip()

    def exec(self, target: TargetHost, *argv: str, check: bool = True) -> str:
        """Run a program on ``target`` as root with these arguments, each as it is (a shell passes them on as its
        positional parameters, never reading them); what it printed, which must be a success unless ``check`` is
        off. As ``output``, a lost read (docker/docker-py#2042) is made again: give it only commands that may run
        twice."""
        container = self.engine.containers.get(target.container_id)
        for _ in range(3):
            code, output = container.exec_run(["sh", "-c", '"$@"; status=$?; echo end-of-output; exit $status', "sh",
                                               *argv])
            text = output.decode(errors="replace").strip()
            if text.endswith("end-of-output"):
                if check:
                    assert code == 0, f"{target.name}: {argv}: {text}"
                return text.removesuffix("end-of-output").strip()
        raise AssertionError(f"{target.name}: {argv}: no complete output in three reads")

    def output(self, target: TargetHost, command: str) -> str:
        """What a command that only reads prints on ``target``. The test bed's engine now and then loses a quick
        exec's output under load (docker/docker-py#2042); a marker printed last tells a lost read from an empty
        answer, and a lost read is made again."""
        for _ in range(3):
            output = self.run(target, f"{command}\nstatus=$?; echo end-of-output; exit $status")
            if output.endswith("end-of-output"):
                return output.removesuffix("end-of-output").strip()
        raise AssertionError(f"{target.name}: {command}: no complete output in three reads")

    def ca_file(self, target: TargetHost) -> Path:
        """A copy of the target's local CA (self-signed mode), as a person imports it into a browser."""
        ca_file = STATE / "ca" / f"{target.name}.crt"
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        pem = self.read(target, f"{INSTALL_DIR}/ca/ca.crt")
        # Replaced in one step: clients made earlier load it again for each new connection.
        if not ca_file.exists() or ca_file.read_bytes() != pem:
            partial = ca_file.with_suffix(".partial")
            partial.write_bytes(pem)
            os.replace(partial, ca_file)
        return ca_file

    def hub(self, target: TargetHost, ca_file: Path | None = None, server_hostname: str | None = None) -> HubClient:
        """A client of the target's hub, by default trusting the target's own local CA (self-signed mode) and
        checking that its certificate names the hub (its first name: the host's own where no hub_names are set),
        which holds whatever address a power-cycled host comes back at; with an API token of the tests' own: made
        by the admin (with the password the deploy generated), for an hour, with the scopes the tests use."""
        if ca_file is None:
            ca_file = self.ca_file(target)
            hostname = self.engine.containers.get(target.container_id).attrs["Config"]["Hostname"]
            server_hostname = server_hostname or (target.data.get("hub_names") or [hostname])[0]
        port = target.data.get("https_port", 443)
        client = HubClient(f"https://{target.address}:{port}", ca_file, None, server_hostname)
        if target.container_id not in self.tokens:
            password = self.read(target, f"{INSTALL_DIR}/secrets/admin-password-admin").decode().strip()
            response = client.api("POST", "/users/admin/tokens", json={
                "auth": {"username": "admin", "password": password}, "expires_in": 3600, "note": "test bed",
                "scopes": TEST_TOKEN_SCOPES})
            response.raise_for_status()
            self.tokens[target.container_id] = response.json()["token"]
        client.session.headers["Authorization"] = f"token {self.tokens[target.container_id]}"
        return client

    def deploy(self, **kwargs) -> DeployRun:
        run = run_deploy(self.targets_file, **kwargs)
        self.runs.append(run)
        return run

    def redeploy_with(self, **settings) -> DeployRun:
        for target in self.targets:
            target.data.update(settings)
        write_inventory_file(self.targets, self.targets_file)
        return self.deploy()


def start(count: int, data: dict | None = None, prefix: str = "smoke", repository: Repository | None = None,
          wsl_host: bool = False, kinds: list[HostKind] | None = None) -> Deployment:
    """Fresh targets; with an NVIDIA ``repository``, GPU hosts that install the toolkit from it; with
    ``wsl_host``, WSL2 stand-ins; ``kinds``, one per target, says what each is (testbed.targets.HostKind)."""
    engine = testbed_engine.client()
    targets = start_targets(engine, count, prefix=prefix, gpus=repository is not None, wsl_host=wsl_host, kinds=kinds)
    for target in targets:
        target.data.update({**repository.inventory_data(), "image_profiles": GPU_TEST_PROFILES} if repository else {})
        target.data.update(data or {})
    targets_file = write_inventory_file(targets, STATE / f"targets-{uuid.uuid4().hex[:8]}.json")
    return Deployment(engine, targets, targets_file, [])


def deploy_twice(deployment: Deployment) -> tuple[DeployRun, DeployRun]:
    first = deployment.deploy()
    if first.returncode != 0:
        raise SmokeFailure(f"first deploy failed ({first.returncode}):\n{_failure(deployment, first)}")
    second = deployment.deploy()
    if second.returncode != 0:
        raise SmokeFailure(f"second deploy failed ({second.returncode}):\n{_failure(deployment, second)}")
    if second.totals.get("success") or second.totals.get("error"):
        raise SmokeFailure(f"second deploy changed something: {second.changed_operations()}")
    return first, second


@contextmanager
def deployed(deployment: Deployment):
    """The deployment, deployed twice (the second run changing nothing); its targets removed afterwards."""
    try:
        deploy_twice(deployment)
        yield deployment
    finally:
        remove_targets(deployment.engine, deployment.targets)
        deployment.targets_file.unlink(missing_ok=True)


def _failure(deployment: Deployment, run: DeployRun) -> str:
    """The end of pyinfra's log, and the hub's own log on each host that failed."""
    failed = set((run.results or {}).get("failed_hosts", []))
    logs = []
    for target in deployment.targets:
        if target.address in failed:
            container = deployment.engine.containers.get(target.container_id)
            output = container.exec_run(["sh", "-c", "docker logs --tail 80 jupyterhub 2>&1"]).output
            logs.append(f"--- the hub's log on {target.address}:\n{output.decode(errors='replace')}")
    text = run.log
    stderr_end = text.find('{"')  # pyinfra's own lines come before its --json document
    return "\n".join([(text[:stderr_end] if stderr_end > 0 else text)[-5000:], *logs])


def check_hub(deployment: Deployment, target: TargetHost, user: str = "smoke") -> str:
    """The hub answers over verified HTTPS; a user's server starts and keeps a file through the proxy."""
    hub = deployment.hub(target)
    version = hub.version()
    text = f"written through the proxy on {target.name}"
    hub.user_server_with_file(user, "smoke.txt", text)
    if hub.read_file(user, "smoke.txt") != text:
        raise SmokeFailure(f"{target.name}: file read back differs")
    hub.stop_server(user)
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=2, help="how many throwaway targets (default 2)")
    parser.add_argument("--keep", action="store_true", help="leave the targets running afterwards")
    parser.add_argument("--cpu-only", action="store_true",
                        help="targets without GPUs (default: stand-in GPUs, toolkit from the test bed's apt "
                             "repository)")
    args = parser.parse_args(argv)

    repository = None if args.cpu_only else Repository(bridge_gateway(testbed_engine.client()))
    deployment = start(args.targets, repository=repository)
    try:
        first, second = deploy_twice(deployment)
        print(f"first deploy: {first.seconds:.0f}s, {first.totals['success']} changes on {len(deployment.targets)} "
              "hosts")
        print(f"second deploy: {second.seconds:.0f}s, 0 changes")
        for target in deployment.targets:
            version = check_hub(deployment, target)
            print(f"{target.name} ({target.address}): JupyterHub {version} over HTTPS, user server OK")
        print("smoke: passed")
        return 0
    except SmokeFailure as failure:
        print(f"smoke: FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept: {[t.name for t in deployment.targets]} (inventory data in {deployment.targets_file})")
        else:
            remove_targets(deployment.engine, deployment.targets)
            deployment.targets_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
