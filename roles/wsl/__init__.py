"""Keep the hub up on a WSL2 host: the engine starts with the distribution, and the distribution starts with
Windows and keeps running when the last terminal closes (WSL stops an idle distribution by design)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, deploy, operation
from pyinfra.facts.files import FileContents
from pyinfra.operations import files

from jupyterhub_gpu.settings import InventoryError
from jupyterhub_gpu.target import Target
from roles.wsl import ini

FILES = Path(__file__).parent / "files"
BOOT_SCRIPT = "/usr/local/sbin/jupyterhub-gpu-boot"
WSL_CONF = "/etc/wsl.conf"
WSL_EXE = r"C:\Windows\System32\wsl.exe"


@dataclass
class Uptime:
    """What the deploy arranged on this WSL host, in words for its closing lines."""

    said: list[str] = field(default_factory=list)


def task_name(distribution: str) -> str:
    return f"jupyterhub-gpu\\{distribution}"


def task_arguments(distribution: str) -> str:
    # One process that never ends keeps the distribution from being stopped as idle.
    return f"-d {distribution} -u root -e sleep infinity"


def task_create_arguments(distribution: str, user: str) -> list[str]:
    """schtasks' arguments for the task: at system start-up, as the user without storing a password (S4U:
    WSL distributions belong to a user, so not as SYSTEM), highest privileges."""
    return ["/Create", "/F", "/TN", task_name(distribution), "/SC", "ONSTART", "/RU", user, "/NP", "/RL", "HIGHEST",
            "/TR", f"{WSL_EXE} {task_arguments(distribution)}"]


def windows_command_line(arguments: list[str]) -> str:
    """The same call as a person types it at a Windows prompt."""
    return "schtasks " + " ".join(f'"{a}"' if " " in a or "\\" in a else a for a in arguments)


class WindowsScheduledTask(FactBase):
    """A scheduled task as schtasks' XML export describes it: command, arguments, whether it starts at boot and
    as whom it logs on; None when there is no such task."""

    def command(self, schtasks: str, task: str) -> StringCommand:
        # The XML comes back in Windows' console encoding: NULs and carriage returns are dropped.
        return StringCommand(QuoteString(schtasks), "/Query", "/TN", QuoteString(task), "/XML", "ONE",
                             "2>/dev/null", "|", "tr", "-d", QuoteString("\\000\\r"), "||", "true")

    def process(self, output) -> dict | None:
        text = "\n".join(output)
        if "<Task" not in text:
            return None

        def tag(name: str) -> str:
            match = re.search(rf"<{name}>(.*?)</{name}>", text, flags=re.DOTALL)
            return match.group(1).strip() if match else ""

        return {"command": tag("Command"), "arguments": tag("Arguments"), "at_boot": "<BootTrigger" in text,
                "logon_type": tag("LogonType")}


@operation(is_idempotent=True)
def scheduled_task(schtasks: str, distribution: str, user: str):
    """The Windows task that starts ``distribution`` at boot and keeps it running, created where missing or
    different (schtasks from WSL's interop, in an elevated session)."""
    name = task_name(distribution)
    task = host.get_fact(WindowsScheduledTask, schtasks=schtasks, task=name)
    wanted = {"command": WSL_EXE, "arguments": task_arguments(distribution), "at_boot": True, "logon_type": "S4U"}
    if task == wanted:
        host.noop(f"Windows task {name} starts {distribution} at boot and keeps it running")
        return
    yield StringCommand(QuoteString(schtasks), *(QuoteString(a) for a in task_create_arguments(distribution, user)))


@deploy("WSL2 uptime")
def ensure_uptime(target: Target) -> Uptime:
    profile, settings = target.profile, target.settings
    uptime = Uptime()
    if not profile.wsl:
        return uptime
    if profile.docker_desktop:
        uptime.said.append(
            "WSL2 with Docker Desktop's engine: the hub runs as long as Docker Desktop does; to start it with "
            "Windows, tick Settings > General > 'Start Docker Desktop when you sign in to your computer'")
        return uptime

    if profile.systemd:
        uptime.said.append("WSL2 with systemd: the Docker engine is enabled and starts with the distribution")
    else:
        _boot_command(uptime)

    distribution = settings.wsl_distribution or profile.wsl_distribution
    if settings.wsl_keep_running:
        _keep_running(target, distribution, uptime)
    if settings.wsl_vm_idle_timeout is not None:
        _vm_idle_timeout(target, uptime)
    return uptime


def _boot_command(uptime: Uptime) -> None:
    """Without systemd nothing starts the engine when the distribution starts: WSL's [boot] command does."""
    files.put(name="Start-up script for the distribution", src=str(FILES / "jupyterhub-gpu-boot.sh"), dest=BOOT_SCRIPT,
              mode="755", create_remote_dir=False)
    current = _text_of(WSL_CONF)

    def with_ours(old: str | None) -> str:
        if not old:
            return BOOT_SCRIPT
        if BOOT_SCRIPT in old:
            return old
        return ini.quoted_like(old, f"{ini.unquoted(old)}; {BOOT_SCRIPT}")

    try:
        merged = ini.with_value(current, "boot", "command", with_ours)
    except ini.IniError as error:
        raise InventoryError(f"host {host.name}: {WSL_CONF} is not a valid INI file ({error}); fix it and deploy "
                             "again") from None
    changed = files.put(name=f"{WSL_CONF} starts the Docker engine and cron at boot", src=io.StringIO(merged),
                        dest=WSL_CONF, mode="644")
    uptime.said.append(f"WSL2 without systemd: {WSL_CONF}'s [boot] command starts the Docker engine and cron when "
                       "the distribution starts" + (" (from its next start: `wsl --terminate <distribution>`)"
                                                    if changed.will_change else ""))


def _text_of(path: str) -> str:
    lines = host.get_fact(FileContents, path=path)
    return "\n".join(lines) + "\n" if lines else ""


def _keep_running(target: Target, distribution: str, uptime: Uptime) -> None:
    profile = target.profile
    user = profile.windows_user or r"<DOMAIN>\<user>"
    command = windows_command_line(task_create_arguments(distribution or "<distribution>", user))
    if not distribution:
        uptime.said.append("WSL2: the distribution's name is unknown here (no WSL_DISTRO_NAME): set wsl_distribution "
                           f"and deploy again, or run in an elevated Windows prompt: {command}")
    elif not profile.windows_system32:
        uptime.said.append("WSL2: Windows' programs cannot run from here (interop is off), so to start the "
                           "distribution with Windows and keep it running, run in an elevated Windows prompt: "
                           f"{command}")
    elif not profile.windows_elevated:
        schtasks = f"{profile.windows_system32}/schtasks.exe"
        task = host.get_fact(WindowsScheduledTask, schtasks=schtasks, task=task_name(distribution))
        if task and task.get("at_boot") and task.get("arguments") == task_arguments(distribution):
            uptime.said.append(f"WSL2: the Windows task {task_name(distribution)} starts {distribution} with Windows "
                               "and keeps it running")
        else:
            uptime.said.append("WSL2: creating a task that runs at Windows start-up needs an elevated session; to "
                               f"start the distribution with Windows and keep it running, run in an elevated "
                               f"Windows prompt: {command}")
    else:
        scheduled_task(name=f"Windows task {task_name(distribution)} keeps {distribution} running",
                       schtasks=f"{profile.windows_system32}/schtasks.exe", distribution=distribution, user=user)
        uptime.said.append(f"WSL2: the Windows task {task_name(distribution)} starts {distribution} with Windows and "
                           "keeps it running")


def _vm_idle_timeout(target: Target, uptime: Uptime) -> None:
    timeout = str(target.settings.wsl_vm_idle_timeout)
    profile = target.profile
    if not profile.windows_profile:
        uptime.said.append(f"WSL2: add `vmIdleTimeout={timeout}` under [wsl2] in %UserProfile%\\.wslconfig "
                           "(Windows cannot be reached from here)")
        return
    path = f"{profile.windows_profile}/.wslconfig"
    current = _text_of(path)
    try:
        merged = ini.with_value(current, "wsl2", "vmIdleTimeout", lambda old: timeout)
    except ini.IniError as error:
        raise InventoryError(f"host {host.name}: {path} is not a valid INI file ({error})") from None
    files.put(name=f".wslconfig lets the WSL VM idle {timeout} ms", src=io.StringIO(merged), dest=path)
    uptime.said.append(f"WSL2: {path} sets vmIdleTimeout={timeout} (from WSL's next start: `wsl --shutdown`)")
