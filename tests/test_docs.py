"""The docs site: it builds with every warning an error (a link to a page or heading that does not exist, a page in no
table of contents), its reference names every setting and every bin/ command, each command answers --help without
touching anything, and the settings its examples give are settings, of the type the model wants. The built front
page and a tutorial are kept as screenshots, as a reader sees them in Chromium."""

from __future__ import annotations

import ast
import html
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from jupyterhub_gpu.settings import HubSettings, ImageProfile
from testbed import checkout_files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILT = DOCS / "_build" / "html"
COMMANDS = sorted(path.name for path in (ROOT / "bin").iterdir() if path.is_file())
PAGES = sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.parts and "_generated" not in path.parts)


@pytest.fixture(scope="module")
def site() -> Path:
    """The site as bin/docs builds it (Sphinx with -W: any warning fails the build), read afresh (-E)."""
    result = subprocess.run([str(ROOT / "bin" / "docs"), "-E"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, f"bin/docs failed:\n{result.stdout}\n{result.stderr}"
    return BUILT


def text_of(page: Path) -> str:
    """A built page's words, without its markup."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_the_site_builds_with_no_warning_and_every_page_in_a_table_of_contents(site):
    built = {path.relative_to(site).with_suffix("") for path in site.rglob("*.html")}
    sources = {page.relative_to(DOCS).with_suffix("") for page in PAGES}
    assert sources <= built, f"pages not built: {sources - built}"
    for section in ("tutorials", "how-to", "reference", "explanation"):
        assert len([page for page in sources if page.parts[0] == section]) >= 4, section


def test_every_setting_is_in_the_reference_with_its_help_text(site):
    reference = text_of(site / "reference" / "settings.html")
    for name, field in HubSettings.model_fields.items():
        assert name in reference, name
        assert re.sub(r"`", "", field.description)[:40] in reference, name


def test_the_generated_reference_pages_are_kept_as_the_code_makes_them():
    """The settings and commands pages are kept in git whole (they read right where the repository is read) and
    made again at each build: a setting or a command changed without the page fails here, naming the page."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generated", DOCS / "_ext" / "generated.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    for path, make in generated.pages().items():
        kept = path.read_text()
        assert generated.with_generated(kept, make()) == kept, (
            f"{path.relative_to(DOCS.parent)} differs from what the code makes: build the docs (bin/docs), commit it")


def test_every_command_is_in_the_reference_as_its_help_says_it(site):
    reference = text_of(site / "reference" / "commands.html")
    for command in COMMANDS:
        assert f"usage: bin/{command}" in reference, command


def test_every_command_answers_help_and_changes_nothing(tmp_path):
    """In a copy of the checkout without .venv: each --help prints its usage and exits 0, and the copy has exactly
    the files it had (no .venv made, nothing installed)."""
    copy = tmp_path / "checkout"
    for name in checkout_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    before = sorted(str(path.relative_to(copy)) for path in copy.rglob("*"))
    for command in COMMANDS:
        for flag in ("--help", "-h"):
            result = subprocess.run([str(copy / "bin" / command), flag], capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, f"bin/{command} {flag}: {result.stderr}"
            assert result.stdout.startswith(f"usage: bin/{command}"), result.stdout
            assert "-h, --help" in result.stdout, command
    assert sorted(str(path.relative_to(copy)) for path in copy.rglob("*")) == before


def test_commands_without_their_arguments_say_how_to_call_them():
    for command in ("backup", "gpu-check", "restore"):
        result = subprocess.run([str(ROOT / "bin" / command)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and result.stderr.startswith(f"usage: bin/{command}"), result


# Keys that are not settings but appear in the examples' data beside them: those of an image profile (in a list
# of image_profiles, whose entries start at the outermost indentation of their block).
NESTED_KEYS = set(ImageProfile.model_fields)


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def mentions_path(annotation) -> bool:
    """Whether a setting holds paths on the controller, which the model reads (the examples' files are not here)."""
    return "Path" in str(annotation)


def test_the_settings_the_examples_give_are_settings_of_the_type_the_model_wants():
    """Each inventory example (a Python block of dictionary entries, or a (name, data) host) names settings only,
    each value of the setting's type: a string where the model wants a list is caught here, not by a reader."""
    checked = 0
    for page in PAGES:
        for block in python_blocks(page):
            keys = re.findall(r'^( *)"([a-z_0-9]+)":', block, flags=re.M)
            outermost = min((len(indent) for indent, _ in keys), default=0)
            for key in (key for indent, key in keys if len(indent) == outermost):
                allowed = key in HubSettings.model_fields or key in NESTED_KEYS or key.startswith(("ssh_", "_"))
                assert allowed, f"{page.relative_to(ROOT)}: {key!r} is not a setting"
            try:
                data = ast.literal_eval("{" + block + "}")
            except (SyntaxError, ValueError, TypeError):
                continue  # not a run of dictionary entries (a notebook cell, an inventory file)
            for key, value in data.items():
                if key in HubSettings.model_fields and not mentions_path(HubSettings.model_fields[key].annotation):
                    try:
                        HubSettings.model_validate({key: value})
                    except ValidationError as error:
                        # Only what is wrong with this value: the model's checks across settings need the rest.
                        mine = [e for e in error.errors() if e["loc"][:1] == (key,)]
                        assert not mine, f"{page.relative_to(ROOT)}: {key} = {value!r}: {mine}"
                    checked += 1
    assert checked >= 25, checked  # the check ran over the examples, not past them


def inventory_examples() -> list[tuple[str, dict]]:
    """Every example of inventory data in the docs, as a deploy would get it: a run of dictionary entries (one host's
    data), or an inventory file (each host's data, as pyinfra reads the file). Labelled by page and host."""
    from tests.test_example_inventories import hosts_of

    examples = []
    for page in PAGES:
        for number, block in enumerate(python_blocks(page), 1):
            label = f"{page.relative_to(ROOT)} block {number}"
            try:
                examples.append((label, ast.literal_eval("{" + block + "}")))
                continue
            except (SyntaxError, ValueError, TypeError):
                pass
            try:
                tree = ast.parse(block)
            except SyntaxError:
                continue  # a fragment of an inventory file ("name": [...] entries of an image profile)
            if not any(isinstance(node, ast.Assign) for node in tree.body):
                continue  # a notebook cell
            inventory = Path(tempfile.mkdtemp()) / "inventory.py"
            inventory.write_text(block)
            examples += [(f"{label}, host {host}", data) for host, data in hosts_of(inventory).items()]
    return examples


def test_every_inventory_example_is_accepted_whole_as_a_deploy_would_check_it(tmp_path, monkeypatch):
    """Each example's settings together, through the settings model as the deploy's first step checks a host (rules
    across settings included: an example the deploy would refuse cannot be on a page). The files an example names on
    the controller are made as empty placeholders, where a reader keeps them: relative to the checkout."""
    from jupyterhub_gpu.settings import from_host_data

    monkeypatch.chdir(tmp_path)
    examples = inventory_examples()
    for label, data in examples:
        for key, value in data.items():
            field = HubSettings.model_fields.get(key)
            if field is not None and mentions_path(field.annotation) and isinstance(value, str):
                (tmp_path / value).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / value).touch()
        try:
            from_host_data("example", data)
        except Exception as error:  # the deploy's own message, which names the key
            pytest.fail(f"{label}: the deploy would refuse this example: {error}")
    assert len(examples) >= 15, [label for label, _ in examples]


def test_the_readme_is_a_front_page_that_links_into_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    for command in ("bin/deploy-local", "bin/test"):
        assert f"{command} " in readme, command
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target


def test_the_front_page_and_a_tutorial_as_a_reader_sees_them(site, tmp_path):
    from testbed.browser import Browser

    browser = Browser()
    try:
        browser.open((site / "index.html").as_uri())
        browser.wait_for_text("Tutorials")
        browser.screenshot("docs-front-page")
        browser.open((site / "tutorials" / "local.html").as_uri())
        text = browser.wait_for_text("A hub on your WSL2 desktop")
        assert "sudo bin/deploy-local" in text
        browser.screenshot("docs-tutorial-local")
    finally:
        browser.close()


def test_what_the_users_page_quotes_the_hub_as_saying_is_what_the_hub_says():
    """The page for the hub's users quotes messages (in “ ”); each is in the hub's code or templates as written, or
    in what the code renders for the lab host of the test bed, <placeholders> aside: the page cannot drift from what
    people read."""
    from gpudockerspawner.form import GPUAvailability, KindChoice
    from gpudockerspawner.gpus import GPUPolicy, HostPool
    from gpudockerspawner.pool import GPUPool
    from testbed.nvidia import LAB_GPUS, units_of

    page = (ROOT / "docs" / "tutorials" / "using-the-hub.md").read_text()
    code = " ".join(" ".join(path.read_text().split()) for path in (ROOT / "spawner").rglob("*")
                    if path.suffix in (".py", ".html") and "tests" not in path.parts)
    code = re.sub(r"""["']\s*f?["']""", "", code)  # Python's adjacent literals, joined as Python joins them
    units = units_of(LAB_GPUS)
    kinds = {unit.kind: unit.label for unit in units}
    choices = tuple(KindChoice(kind, label, 2, 2) for kind, label in kinds.items())
    four = HostPool(["0", "1", "2", "3"], 1, lambda: GPUPool(["0", "1", "2", "3"]))
    rendered = html.unescape(GPUAvailability(5, 5, 0, 1, "", "refuse", choices).kind_choice()) + " " + \
        GPUPolicy(on_exhausted="cpu").none_free(four)
    quoted = re.findall(r"“([^”]+)”", " ".join(page.split()))
    assert len(quoted) >= 6, quoted
    for text in quoted:
        for piece in re.split(r"<[a-z]+>", text):
            piece = piece.strip(" .;:")
            if len(piece) >= 8:
                assert piece in code or piece in rendered, f"{text!r}: {piece!r} is nowhere in what the hub says"


def test_each_known_failure_the_deploy_explains_is_in_the_troubleshooting_page_with_its_cause():
    from roles.nvidia_toolkit import KNOWN_FAILURES

    page = " ".join((ROOT / "docs" / "how-to" / "troubleshooting.md").read_text().split())
    for message, meaning in KNOWN_FAILURES.items():
        assert f"`{message}`" in page, message
        assert meaning.split(":")[0] in page, meaning
