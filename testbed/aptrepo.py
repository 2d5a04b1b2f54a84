"""A signed local apt repository that stands in for NVIDIA's container toolkit repository.

Laid out like NVIDIA's (a flat repository per architecture, `deb [signed-by=...] URL/stable/deb/$(ARCH) /`),
signed with a GPG key made at test time, and served over HTTP where the target hosts reach it. Its
packages carry the toolkit's commands as stand-ins:

- nvidia-container-toolkit-base: `nvidia-ctk`, which edits /etc/docker/daemon.json as the real one does
  (`runtime configure --runtime=docker`) and writes a CDI spec (`cdi generate`);
- nvidia-container-toolkit: `nvidia-container-runtime-hook` (see nvidia.py) and `nvidia-container-runtime`
  (which adds the hook to a container that asks for GPUs, as the real one's legacy mode does, and runs runc);
- libnvidia-container-tools, libnvidia-container1: `nvidia-container-cli`, and the library's place.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import subprocess
import textwrap
import threading
from pathlib import Path

from testbed import STATE, machine_lock
from testbed.nvidia import HOOK_NAME, STUB

VERSION = "1.17.8-1"
ARCH = "amd64"

NVIDIA_CTK = textwrap.dedent('''\
    #!/usr/bin/python3
    """Test bed stand-in for nvidia-ctk: the subcommands the deploy uses, with the real one's effects."""
    import json, os, sys

    args = sys.argv[1:]
    def option(name, default):
        for arg in args:
            if arg.startswith(f"--{name}="):
                return arg.split("=", 1)[1]
        return default

    if args[:2] == ["runtime", "configure"]:
        assert option("runtime", "docker") == "docker", "only --runtime=docker is stood in for"
        path = option("config", "/etc/docker/daemon.json")
        config = {}
        if os.path.exists(path) and open(path).read().strip():
            config = json.load(open(path))
        config.setdefault("runtimes", {})["nvidia"] = {"args": [], "path": "nvidia-container-runtime"}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as out:
            json.dump(config, out, indent=4)
        print(f"INFO Wrote updated config to {path}")
        print("INFO It is recommended that docker daemon be restarted.")
    elif args[:2] == ["cdi", "generate"]:
        output = option("output", "/etc/cdi/nvidia.yaml")
        os.makedirs(os.path.dirname(output), exist_ok=True)
        with open(output, "w") as out:
            out.write("cdiVersion: 0.5.0\\nkind: nvidia.com/gpu\\ndevices: []\\n")
        print(f"INFO Generated CDI spec {output}")
    elif args[:1] == ["--version"]:
        print("NVIDIA Container Toolkit CLI version 1.17.8 (test bed stand-in)")
    else:
        sys.exit(f"nvidia-ctk stand-in: unsupported arguments {args}")
''')

NVIDIA_RUNTIME = textwrap.dedent('''\
    #!/usr/bin/python3
    """Test bed stand-in for nvidia-container-runtime, in the real one's legacy mode: a container created with GPUs
    asked for in its environment (Swarm's resource variables where config.toml names them, else
    NVIDIA_VISIBLE_DEVICES) gets the prestart hook in its OCI spec; runc runs it."""
    import json, os, re, sys

    args = sys.argv[1:]
    if "create" in args and "--bundle" in args:
        path = os.path.join(args[args.index("--bundle") + 1], "config.json")
        with open(path) as spec_file:
            spec = json.load(spec_file)
        env = dict(item.split("=", 1) for item in spec.get("process", {}).get("env", []) if "=" in item)
        toml = "/etc/nvidia-container-runtime/config.toml"
        config = open(toml).read() if os.path.exists(toml) else ""
        # swarm-resource names variables, comma-separated: where any is set, their devices joined (the real
        # runtime's DevicesFromEnvvars), else NVIDIA_VISIBLE_DEVICES.
        named = re.findall(r'^\\s*swarm-resource\\s*=\\s*"([^"]+)"', config, re.M)
        swarm = [name.strip() for value in named for name in value.split(",") if name.strip() in env]
        devices = ",".join(env[name] for name in swarm) if swarm else env.get("NVIDIA_VISIBLE_DEVICES", "")
        hooked = any(h.get("path", "").endswith("nvidia-container-runtime-hook")
                     for h in spec.get("hooks", {}).get("prestart", []))
        if devices and devices not in ("void", "none") and not hooked:
            hook = {"path": "/usr/bin/nvidia-container-runtime-hook",
                    "args": ["nvidia-container-runtime-hook", "prestart"]}
            spec.setdefault("hooks", {}).setdefault("prestart", []).append(hook)
            with open(path, "w") as spec_file:
                json.dump(spec, spec_file)
    os.execvp("runc", ["runc"] + args)
''')

# The head of the real toolkit's default config.toml (`nvidia-ctk config default`): top-level keys, Swarm's
# commented out, then its tables.
RUNTIME_CONFIG = """#accept-nvidia-visible-devices-as-volume-mounts = false
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
disable-require = false
supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"
#swarm-resource = "DOCKER_RESOURCE_GPU"

[nvidia-container-cli]
environment = []
ldconfig = "@/sbin/ldconfig"
load-kmods = true

[nvidia-container-runtime]
log-level = "info"
mode = "auto"
runtimes = ["runc", ""]
"""

PACKAGES = {
    "libnvidia-container1": ("", {}),
    "libnvidia-container-tools": (
        f"libnvidia-container1 (= {VERSION})",
        {"usr/bin/nvidia-container-cli": "#!/bin/sh\necho 'NVRM version: test bed stand-in'\n"},
    ),
    "nvidia-container-toolkit-base": ("python3", {"usr/bin/nvidia-ctk": NVIDIA_CTK,
                                                  "etc/nvidia-container-runtime/config.toml": RUNTIME_CONFIG}),
    "nvidia-container-toolkit": (
        f"nvidia-container-toolkit-base (= {VERSION}), libnvidia-container-tools (= {VERSION})",
        {f"usr/bin/{HOOK_NAME}": STUB, "usr/bin/nvidia-container-runtime": NVIDIA_RUNTIME},
    ),
}


def _run(*command: str, cwd: Path | None = None, env: dict | None = None) -> str:
    return subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def build(root: Path) -> Path:
    """Build the repository under ``root`` (once); returns the directory to serve."""
    served = root / "www"
    pool = served / "stable" / "deb" / ARCH
    if (pool / "InRelease").exists():
        return served
    pool.mkdir(parents=True, exist_ok=True)
    gnupg = root / "gnupg"
    gnupg.mkdir(mode=0o700, exist_ok=True)
    env = {"GNUPGHOME": str(gnupg), "PATH": "/usr/bin:/bin"}
    _run("gpg", "--batch", "--quick-generate-key", "--passphrase", "",
         "jupyterhub-gpu test bed <testbed@example.test>", "rsa3072", "sign", "never", env=env)
    (served / "gpgkey").write_text(_run("gpg", "--armor", "--export", env=env))
    for name, (depends, contents) in PACKAGES.items():
        tree = root / "build" / name
        (tree / "DEBIAN").mkdir(parents=True, exist_ok=True)
        control = (f"Package: {name}\nVersion: {VERSION}\nArchitecture: {ARCH}\n"
                   "Maintainer: test bed <testbed@example.test>\n")
        if depends:
            control += f"Depends: {depends}\n"
        control += f"Description: test bed stand-in for NVIDIA's {name}\n"
        (tree / "DEBIAN" / "control").write_text(control)
        for path, text in contents.items():
            file = tree / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text)
            file.chmod(0o644 if path.startswith("etc/") else 0o755)
        _run("dpkg-deb", "--root-owner-group", "--build", str(tree), str(pool / f"{name}_{VERSION}_{ARCH}.deb"))
    (pool / "Packages").write_text(_run("apt-ftparchive", "packages", ".", cwd=pool))
    (pool / "Release").write_text(_run("apt-ftparchive", "release", ".", cwd=pool))
    _run("gpg", "--batch", "--yes", "--clearsign", "-o", "InRelease", "Release", cwd=pool, env=env)
    _run("gpg", "--batch", "--yes", "-abs", "-o", "Release.gpg", "Release", cwd=pool, env=env)
    return served


class Repository:
    """The repository served on ``address`` (the test bed's bridge gateway, which targets reach)."""

    def __init__(self, address: str):
        # Named by what it holds, so that a changed stand-in is built anew rather than served stale.
        content = hashlib.sha256(repr(sorted(PACKAGES.items())).encode()).hexdigest()[:12]
        with machine_lock("aptrepo"):
            directory = build(STATE / f"aptrepo-{content}")
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.server = http.server.ThreadingHTTPServer((address, 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        base = f"http://{address}:{self.server.server_address[1]}"
        self.repo_url = f"{base}/stable/deb/$(ARCH)"
        self.key_url = f"{base}/gpgkey"

    def inventory_data(self) -> dict:
        # Served over plain HTTP on the test bed's own bridge: a network the tests trust, said on purpose.
        return {"nvidia_repo_url": self.repo_url, "nvidia_key_url": self.key_url, "allow_plain_http": True}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass
