"""The JupyterLab settings the built single-user image carries (``jupyterlab_news``): the news question and the
release check off on a managed hub unless the admin turns them on, where JupyterLab reads them."""

from __future__ import annotations

import json

from jupyterhub_gpu.settings import from_host_data
from roles.images.recipes import TEMPLATES, lab_overrides

NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def test_the_news_question_and_the_release_check_are_off_unless_the_admin_turns_them_on():
    assert json.loads(lab_overrides(from_host_data("h", {})))[NOTIFICATION] == {
        "fetchNews": "false", "checkForUpdates": False}
    # On: JupyterLab's own defaults (it asks each person).
    assert json.loads(lab_overrides(from_host_data("h", {"jupyterlab_news": True})))[NOTIFICATION] == {
        "fetchNews": "none", "checkForUpdates": True}


def test_the_image_puts_them_where_its_jupyterlab_reads_overrides():
    # The image's Python is the venv of prelude.Dockerfile.j2: JupyterLab's application directory is under it.
    assert "python3 -m venv /opt/venv" in (TEMPLATES / "prelude.Dockerfile.j2").read_text()
    assert ("COPY overrides.json /opt/venv/share/jupyter/lab/settings/overrides.d/jupyterhub-gpu.json"
            in (TEMPLATES / "singleuser.Dockerfile.j2").read_text())


def test_real_time_collaboration_is_in_the_built_image_unless_turned_off():
    from jupyterhub_gpu.target import Target
    from roles.images.recipes import COLLABORATION, image_recipes
    from tests.test_hub_config import PROFILE

    def requirements(**data) -> str:
        target = Target(settings=from_host_data("h", data), profile=PROFILE)
        (singleuser,) = [recipe for recipe in image_recipes(target, "") if recipe.name == "singleuser"]
        return singleuser.files["requirements.txt"].decode()

    assert COLLABORATION in requirements().splitlines()
    assert COLLABORATION not in requirements(collaboration=False)
    # And the GPU view's source, built in the image's own stage.
    target = Target(settings=from_host_data("h", {}), profile=PROFILE)
    (singleuser,) = [recipe for recipe in image_recipes(target, "") if recipe.name == "singleuser"]
    assert {"lab/package-lock.json", "lab/src/index.ts", "lab/jupyterhub_gpu_lab/view.py"} <= set(singleuser.files)
    assert "COPY --from=lab-extension /wheels/ /tmp/lab-wheels/" in singleuser.files["Dockerfile"].decode()
