"""A single-user server's boot in the deploy's image, beside the same image with the start-up waste put back.

    .venv/bin/python -m benchmarks.server_boot [--image jupyterhub-gpu/singleuser:<tag>] [--rounds 10]

The image is the newest `jupyterhub-gpu/singleuser` on this machine's engine (a deploy onto this machine or a test
run builds it). The baseline is that image with what its build removes put back (rfc3987-syntax and lark installed
again from PyPI, the jupyter-lsp server extension enabled, JupyterHub's files as released, without the image's
patch), built here once. Each round starts one container of each, in turn, running Jupyter Server as the hub would
start it (JupyterLab and every server extension, no hub), and times from the container's start to `/api` answering,
polled every 20 ms; and, in the same containers, the imports of `jupyter_server.serverapp` and of
`jupyterhub.singleuser` (what `jupyterhub-singleuser` imports first; `python -X importtime`). Printed: median and
p95 of each, and their ratios.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import urllib.error
import urllib.request

import docker

from roles.images import jupyterhub_pin
from testbed import engine as testbed_engine

BASELINE = """FROM {image}
USER root
RUN pip install --no-cache-dir --quiet rfc3987-syntax==1.1.0 lark==1.3.1 \\
 && pip install --no-cache-dir --quiet --force-reinstall --no-deps {jupyterhub} \\
 && jupyter server extension enable --sys-prefix jupyter_lsp
USER jovyan
"""
SERVER = ["jupyter", "server", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.token=",
          "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True"]


def newest_image(client: docker.DockerClient) -> str:
    images = [image for image in client.images.list("jupyterhub-gpu/singleuser") if image.tags]
    if not images:
        raise SystemExit("no jupyterhub-gpu/singleuser image here: deploy onto this machine (bin/deploy-local) or run "
                         "the tests first")
    newest = max(images, key=lambda image: image.attrs["Created"])
    return newest.tags[0]


def baseline_of(client: docker.DockerClient, image: str) -> str:
    tag = f"jupyterhub-gpu-bench/singleuser-baseline:{image.rsplit(':', 1)[1]}"
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        import io

        dockerfile = BASELINE.format(image=image, jupyterhub=jupyterhub_pin())
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    return tag


IMPORTS = ("jupyter_server.serverapp", "jupyterhub.singleuser")


def boot(client: docker.DockerClient, image: str) -> dict[str, float]:
    """Seconds from the container's start to /api answering, and of each of IMPORTS (cumulative, importtime's)."""
    container = client.containers.create(image, SERVER, entrypoint=[], user="jovyan")
    try:
        started = time.monotonic()
        container.start()
        container.reload()
        url = f"http://{container.attrs['NetworkSettings']['IPAddress']}:8888/api"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() - started > 120:
                    raise RuntimeError(f"{image}: no answer in 120 s: {container.logs()[-2000:]!r}") from None
                time.sleep(0.02)
        figures = {"ready": time.monotonic() - started}
        for module in IMPORTS:
            _, output = container.exec_run(["python", "-X", "importtime", "-c", f"import {module}"])
            cumulative = re.findall(rf"\|\s*(\d+) \| {re.escape(module)}$", output.decode(), flags=re.M)
            figures[module] = int(cumulative[-1]) / 1e6 if cumulative else float("nan")
        return figures
    finally:
        container.remove(force=True)


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="the single-user image (default: the newest here)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    client = testbed_engine.client()
    image = args.image or newest_image(client)
    baseline = baseline_of(client, image)
    measures = ("ready", *IMPORTS)
    results = {each: {measure: [] for measure in measures} for each in (baseline, image)}
    boot(client, image)  # the page cache warmed for both alike
    boot(client, baseline)
    for _ in range(args.rounds):
        for each in (baseline, image):
            for measure, value in boot(client, each).items():
                results[each][measure].append(value)
    print(f"Jupyter Server boot, {args.rounds} rounds each, alternating: ready (median, p95) and imports (median)")
    print(f"{'image':<48}{'ready':>8}{'p95':>8}" + "".join(f"{module:>26}" for module in IMPORTS))
    for each, label in ((baseline, "baseline (as released, rfc3987, lsp)"), (image, image)):
        figures = results[each]
        print(f"{label:<48}{statistics.median(figures['ready']):>7.2f}s{p95(figures['ready']):>7.2f}s"
              + "".join(f"{statistics.median(figures[module]):>25.2f}s" for module in IMPORTS))
    ours, theirs = results[image], results[baseline]
    print("ratio, this image / baseline: ready "
          f"{statistics.median(ours['ready']) / statistics.median(theirs['ready']):.2f}"
          f" (p95 {p95(ours['ready']) / p95(theirs['ready']):.2f}), imports " + ", ".join(
              f"{module} {statistics.median(ours[module]) / statistics.median(theirs[module]):.2f}"
              for module in IMPORTS))


if __name__ == "__main__":
    main()
