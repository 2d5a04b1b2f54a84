"""Sphinx configuration of the docs site: MyST Markdown with the PyData theme, as JupyterHub's own docs.

The reference pages for the settings and the bin/ commands are generated at each build (``_ext/generated.py``),
from the settings model and from each command's own ``--help``, so that they cannot drift from the code."""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS / "_ext"), str(DOCS.parent)]

project = "jupyterhub-gpu"
author = "the jupyterhub-gpu authors"
copyright = "2026, the jupyterhub-gpu authors"

extensions = ["myst_parser", "generated"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated", "requirements.txt"]
myst_enable_extensions = ["colon_fence", "deflist"]
# Headings get anchors, so that pages link to a section: [](../how-to/backup-restore.md#reprovisioning-a-wsl2-host)
myst_heading_anchors = 3
# A link to a page or heading that does not exist is a warning (MyST's default), and bin/docs makes every warning
# an error.

html_theme = "pydata_sphinx_theme"
html_title = "jupyterhub-gpu"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
    # No calls to the internet when a page is read: the version switcher and icons are not used.
    "icon_links": [],
}
html_show_sourcelink = False
# Quotes as written: settings' help text and commands are quoted as they are typed.
smartquotes = False
