"""``python -m jupyterhub_gpu.settings``: print the settings reference."""

from jupyterhub_gpu.settings.reference import settings_table

print(settings_table(), end="")
