"""A local ACME server for certbot: Pebble and pebble-challtestsrv from Debian's `pebble` (see README.md here).

Pebble listens where the targets reach it (the bridge gateway) with a certificate from a throwaway
CA; its DNS is pebble-challtestsrv, which the tests tell which target answers for which name; it
validates HTTP-01 on the targets' port 80, where certbot answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import requests

from testbed import STATE


def throwaway_ca(directory: Path, subject: str, dns: list[str] = (), ips: list[str] = ()) -> tuple[Path, Path, Path]:
    """A CA and a leaf certificate it signs for ``dns``/``ips``: (ca.pem, leaf.pem, leaf.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / name for name in ("ca.key", "ca.pem", "leaf.key", "leaf.csr", "leaf.pem"))
    ext = directory / "leaf.ext"
    sans = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips])
    ext.write_text(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    quiet = {"check": True, "capture_output": True}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-keyout", ca_key, "-out", ca, "-subj", f"/CN={subject} CA",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
                   **quiet)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", f"/CN={subject}"], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                    "-days", "2", "-extfile", ext, "-out", cert], **quiet)
    return ca, cert, key


class Pebble:
    def __init__(self, address: str):
        self.root = STATE / "pebble"
        self.ca_file, cert, key = throwaway_ca(self.root / "tls", "pebble", dns=["localhost"], ips=[address])
        self.directory_url = f"https://{address}:14000/dir"
        self.management_url = f"https://{address}:15000"
        config = self.root / "pebble-config.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"{address}:14000", "managementListenAddress": f"{address}:15000",
            "certificate": str(cert), "privateKey": str(key), "httpPort": 80, "tlsPort": 443,
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
        }}))
        self.log = self.root / "pebble.log"
        with (self.root / "challtestsrv.log").open("ab") as log:
            self.dns = subprocess.Popen(
                ["pebble-challtestsrv", "-defaultIPv4", "", "-defaultIPv6", "", "-dns01", "127.0.0.1:8053",
                 "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", "127.0.0.1:8055"],
                stdout=log, stderr=log, start_new_session=True)
        with self.log.open("wb") as log:
            self.pebble = subprocess.Popen(
                ["pebble", "-config", str(config), "-dnsserver", "127.0.0.1:8053"], stdout=log, stderr=log,
                env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
                start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            for name, process in (("pebble", self.pebble), ("pebble-challtestsrv", self.dns)):
                if process.poll() is not None:
                    # Most likely its port is taken: one that an interrupted run left answers with another CA.
                    raise RuntimeError(f"{name} exited as it started (see {self.root}); is one left by an "
                                       "interrupted run still listening? `pkill -f pebble` ends it")
            try:
                requests.get(self.directory_url, verify=str(self.ca_file), timeout=2).raise_for_status()
                requests.get("http://127.0.0.1:8055/", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def resolve(self, name: str, address: str) -> None:
        """Make ``name`` resolve to ``address`` for Pebble's validation."""
        requests.post("http://127.0.0.1:8055/add-a", json={"host": name, "addresses": [address]}, timeout=5
                      ).raise_for_status()

    def issuing_root(self) -> str:
        response = requests.get(f"{self.management_url}/roots/0", verify=str(self.ca_file), timeout=5)
        response.raise_for_status()
        return response.text

    def orders(self) -> int:
        """How many orders Pebble has been sent (counted in its log)."""
        return self.log.read_text(errors="replace").count("POST /order-plz")

    def close(self) -> None:
        for process in (self.pebble, self.dns):
            process.terminate()
            process.wait(timeout=10)
