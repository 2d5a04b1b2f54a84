"""This very machine, deployed to without SSH (run pyinfra as root on it, e.g. inside WSL2).

Your settings go in inventories/local_settings.py, which git does not track (so that `git pull` never conflicts
with them): ``SETTINGS = {"hub_names": ["gpubox.lab"], "gpus_per_user": 1}`` (every key is in the settings
reference in docs/). Without that file, the defaults, which suit a WSL2 desktop or a LAN host."""

import runpy
from pathlib import Path

_settings_file = Path(__file__).with_name("local_settings.py")
_settings = runpy.run_path(str(_settings_file)).get("SETTINGS", {}) if _settings_file.exists() else {}

local = [("@local", _settings)]
