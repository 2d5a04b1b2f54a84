"""The inventory settings of a JupyterHub GPU host: declared once, validated once.

Every key a user may put in an inventory's host or group data is a field of ``HubSettings`` with its type,
default and help text, in the module of its concern (addresses, host, images, accounts, gpus, servers; each a
section of the settings reference). ``from_host_data`` is the one place that turns pyinfra host data into
settings; the docs' settings reference is generated from the model (``python -m jupyterhub_gpu.settings``
prints it).

  types.py      what each kind of value may look like      concern.py   a concern, and how a setting names its trait
  profiles.py   the spawn form's image profiles           model.py     HubSettings: the concerns, and rules across them
  inventory.py  host data in, one error naming each key   traits.py    the settings the hub sets as they are
  reference.py  the settings reference
"""

from jupyterhub_gpu.settings.inventory import InventoryError, from_host_data
from jupyterhub_gpu.settings.model import CONCERNS, HubSettings
from jupyterhub_gpu.settings.profiles import DEFAULT_PROFILES, ImageProfile
from jupyterhub_gpu.settings.reference import settings_table
from jupyterhub_gpu.settings.traits import hub_traits
from jupyterhub_gpu.settings.types import GPU_CHECK_USER, SERVICE_ACCOUNT

__all__ = ["CONCERNS", "DEFAULT_PROFILES", "GPU_CHECK_USER", "SERVICE_ACCOUNT", "HubSettings", "ImageProfile",
           "InventoryError", "from_host_data", "hub_traits", "settings_table"]
