"""Check the GPU path end to end, as a user's notebook would meet it: run inside the hub's container by
``bin/gpu-check`` (deploy/gpu_check.py) with ``docker exec -i jupyterhub python3 -``.

Through the hub's API (the service token of ``jupyterhub-gpu-check``, which may only start and stop the
servers of the user ``gpu-check``), it starts a throwaway server on the first GPU profile, runs a small CUDA
computation in it (a matrix product on the device, checked against the CPU's), says which GPU it ran on and
how long it took, and removes the server. A failure names the link that broke: hub, image, runtime, device or
compute. Standard library and docker-py only (the hub image has both).
"""

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker

# The hub's settings as the deploy wrote them (jupyterhub_gpu_hub.contract), read as plain JSON: the check runs as a
# script piped into the hub's Python, whichever version of this package the hub's image has.
SETTINGS_FILE = Path("/etc/jupyterhub/hub.json")
TOKEN = Path("/run/jupyterhub/secrets/gpu_check_api_token")
START_TIMEOUT = 900  # the first start of a several-GB image on a slow disk

# Runs in the user's container as the user (jovyan). Prints one JSON line per finding; the last one is the
# verdict: {"ok": true, ...} or {"ok": false, "link": ..., "message": ...}.
IN_CONTAINER = r'''
import ctypes, glob, json, os, sys, time

def say(**finding):
    print(json.dumps(finding), flush=True)

def fail(link, message):
    say(ok=False, link=link, message=message)
    sys.exit(0)

visible = os.environ.get("NVIDIA_VISIBLE_DEVICES", "")
if visible in ("", "void", "none"):
    fail("hub", "the server was given no GPU (NVIDIA_VISIBLE_DEVICES=%r)" % visible)
say(step="GPU given by the hub", value=visible)

try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    say(step="CUDA runtime in the image", value="PyTorch %s, CUDA %s" % (torch.__version__, torch.version.cuda))
    if not torch.version.cuda:
        fail("image", "the image's PyTorch was built without CUDA (a CPU-only wheel)")
else:
    found = []
    for path in sys.path:
        found += glob.glob(os.path.join(path, "nvidia", "cuda_runtime", "lib", "libcudart.so*"))
    if not found:
        fail("image", "the image has no CUDA runtime: neither PyTorch nor nvidia-cuda-runtime is installed")
    cudart = ctypes.CDLL(found[0])
    version = ctypes.c_int()
    cudart.cudaRuntimeGetVersion(ctypes.byref(version))
    say(step="CUDA runtime in the image", value="libcudart %d.%d" % (version.value // 1000, version.value % 1000 // 10))

try:
    libcuda = ctypes.CDLL("libcuda.so.1")
except OSError as error:
    fail("runtime", "the driver's libcuda.so.1 is not in the container (%s): the NVIDIA Container Toolkit did not "
         "set the container up; check `nvidia-ctk --version` and that Docker uses the nvidia runtime or hook "
         "(on WSL2, the Windows NVIDIA driver)" % error)
driver = ctypes.c_int()
libcuda.cuDriverGetVersion(ctypes.byref(driver))
say(step="driver's libcuda", value="CUDA driver API %d.%d" % (driver.value // 1000, driver.value % 1000 // 10))
status = libcuda.cuInit(0)
count = ctypes.c_int()
if status == 0:
    status = libcuda.cuDeviceGetCount(ctypes.byref(count))
if status != 0 or count.value < 1:
    name = ctypes.c_char_p()
    libcuda.cuGetErrorName(status, ctypes.byref(name))
    fail("device", "CUDA sees no usable GPU (%s): the driver and the GPU do not answer; run nvidia-smi on the "
         "host" % ((name.value or b"no device").decode()))
if torch is None:
    say(ok=True, gpu=visible, message="a GPU answers; no PyTorch in the image, so no computation was run")
    sys.exit(0)
device = torch.device("cuda:0")
a = torch.randn(2048, 2048, dtype=torch.float32)
b = torch.randn(2048, 2048, dtype=torch.float32)
expected = a @ b
started = time.perf_counter()
on_gpu = (a.to(device) @ b.to(device))
torch.cuda.synchronize()
seconds = time.perf_counter() - started
if not torch.allclose(on_gpu.cpu(), expected, rtol=1e-3, atol=1e-2):
    fail("compute", "the GPU's matrix product differs from the CPU's")
say(ok=True, gpu="%s (%s)" % (torch.cuda.get_device_name(0), visible),
    message="2048x2048 matrix product on the GPU in %.1f ms, equal to the CPU's" % (seconds * 1000))
'''


class Failure(Exception):
    def __init__(self, link: str, message: str):
        super().__init__(f"FAILED at {link}: {message}")


class Hub:
    """What the check reads of the hub's settings: its API's port, the check's user, the profiles."""

    def __init__(self, settings: dict):
        self.api_url = f"http://127.0.0.1:{settings['hub']['api_port']}/hub/api"
        self.user = (settings["hub"].get("gpu_check") or {}).get("user", "gpu-check")
        self.profiles = settings["spawner"]["profiles"]


HUB: Hub | None = None


def api(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"{HUB.api_url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {TOKEN.read_text().strip()}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else {})
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"message": text.decode(errors="replace")}


def server() -> dict | None:
    _, user = api("GET", f"/users/{HUB.user}")
    return (user.get("servers") or {}).get("")


def gpu_profile(profiles: list[dict]) -> str:
    names = [profile["name"] for profile in profiles if profile["gpu"]]
    if not names:
        raise Failure("driver", "the hub has no GPU to hand out: the deploy found none (nvidia-smi on the host "
                                "lists no GPU, or gpu_ids is none)")
    return names[0]


def start(profile: str) -> dict:
    code, answer = api("POST", f"/users/{HUB.user}/server", {"image": profile})
    if code not in (201, 202):
        raise Failure("hub", f"the hub refused to start a {profile} server ({code}): {answer.get('message')}")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = server()
        if state and state.get("ready"):
            return state
        if not state:
            raise Failure("hub", f"the {profile} server failed to start: {last_spawn_error()}")
        time.sleep(2)
    raise Failure("hub", f"the {profile} server did not start within {START_TIMEOUT} s")


def last_spawn_error() -> str:
    logs = docker.from_env().containers.get("jupyterhub").logs(tail=200).decode(errors="replace").splitlines()
    mentions = [line for line in logs if HUB.user in line and ("Error" in line or "error" in line or "failed" in line)]
    return mentions[-1].strip() if mentions else "see `docker logs jupyterhub`"


def run_in_server() -> dict:
    client = docker.from_env()
    (container,) = client.containers.list(filters={"label": f"gpudockerspawner.owner={HUB.user}/"})
    result = container.exec_run(["python3", "-c", IN_CONTAINER], user="jovyan")
    verdict = None
    for line in result.output.decode(errors="replace").splitlines():
        try:
            finding = json.loads(line)
        except ValueError:
            print(f"  {line}")
            continue
        if "step" in finding:
            print(f"  {finding['step']}: {finding['value']}")
        else:
            verdict = finding
    if verdict is None:
        raise Failure("image", f"the check did not run in the server (exit {result.exit_code})")
    return verdict


def stop() -> None:
    api("DELETE", f"/users/{HUB.user}/server")
    deadline = time.monotonic() + 120
    while server() and time.monotonic() < deadline:
        time.sleep(1)


def main() -> int:
    global HUB
    HUB = Hub(json.loads(SETTINGS_FILE.read_text()))
    try:
        profile = gpu_profile(HUB.profiles)
        print(f"starting a throwaway {profile} server for the user {HUB.user} through the hub's API")
        start(profile)
        try:
            verdict = run_in_server()
        finally:
            stop()
        if not verdict["ok"]:
            raise Failure(verdict["link"], verdict["message"])
        print(f"OK: {verdict['gpu']}: {verdict['message']}")
        return 0
    except Failure as failure:
        print(failure)
        return 1


if __name__ == "__main__":
    sys.exit(main())
