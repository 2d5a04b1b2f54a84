"""Plan a role for a host described only by facts: the operations it declares and the commands each
would run, without connecting anywhere. For distributions the test bed cannot boot (Ubuntu, WSL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import FileUploadCommand, FunctionCommand
from pyinfra.api.deploy import add_deploy
from pyinfra.api.host import Host
from pyinfra.api.state import StateStage
from pyinfra.connectors.util import CommandOutput
from pyinfra.context import ctx_host, ctx_state

from jupyterhub_gpu import remote


class UnknownFact(KeyError):
    pass


def plan(monkeypatch, facts: dict[type, Any], deploy: Callable, *args) -> list[tuple[str, list[str]]]:
    """Run ``deploy(*args)`` against fake ``facts`` ({FactClass: value, or callable(**fact kwargs)}).

    Returns (operation name, commands) for every operation, commands empty where it is a no-op or its
    ``_if`` conditions (on earlier operations' changes) do not hold, as at execution. Operations are also
    checked for changes before execution, as ``pyinfra`` without ``-y`` does.
    A fact the role asks for and the test did not give fails the test.
    """

    def get_fact(self, cls, *fact_args, **fact_kwargs):
        if cls not in facts:
            raise UnknownFact(f"{cls.__name__}({fact_kwargs}) was not given to plan()")
        value = facts[cls]
        return value(**fact_kwargs) if callable(value) else value

    monkeypatch.setattr(Host, "get_fact", get_fact)
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    state.set_stage(StateStage.Prepare)
    host = inventory.get_host("@local")
    state.activate_host(host)
    add_deploy(state, deploy, *args, host=host)
    planned = []
    state.set_stage(StateStage.Execute)
    state.is_executing = True
    with ctx_state.use(state), ctx_host.use(host):
        for op_hash in state.get_op_order():
            name = ", ".join(sorted(state.op_meta[op_hash].names))
            op_data = state.get_op_data_for_host(host, op_hash)
            # As at execution: _if conditions on earlier operations' changes decide, then the operation.
            commands = list(op_data.command_generator())
            op_data.operation_meta.set_complete(True, commands, CommandOutput([]))
            planned.append((name, [_text(command) for command in commands]))
    return planned


def commands_of(planned) -> list[str]:
    return [command for _, commands in planned for command in commands]


def _text(command) -> str:
    if hasattr(command, "get_raw_value"):
        return command.get_raw_value()
    if isinstance(command, FileUploadCommand):
        return f"upload {command.dest}"
    if isinstance(command, FunctionCommand) and command.function is remote._uploaded:
        _, dest, mode = command.args
        return f"private upload {dest} mode {mode}"
    return repr(command)


def fresh_host_facts() -> dict:
    """Every fact the roles ask, as a fresh host answers it: nothing installed, no files, no images."""
    from pyinfra.facts.apt import AptSources
    from pyinfra.facts.deb import DebPackages
    from pyinfra.facts.docker import DockerImage, DockerNetwork
    from pyinfra.facts.files import Directory, File, FileContents, FindInFile, Link, Sha1File, Sha256File
    from pyinfra.facts.server import Command, Port, TmpDir, Which
    from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

    from jupyterhub_gpu.apt import PackageManagerState
    from jupyterhub_gpu.facts import (
        AccountIds,
        ComposeServices,
        DockerServerVersion,
        EngineRuntimes,
        ImagesInUse,
        PublishedFor,
    )
    from roles.nvidia_toolkit import GPUContainerCheck
    from roles.tls import CertificateState
    from roles.wsl import WindowsScheduledTask

    return {
        AptSources: [], DebPackages: {}, DockerImage: lambda **kwargs: None, DockerNetwork: lambda **kwargs: None,
            Directory: lambda **kwargs: None,
        File: lambda **kwargs: None, Link: lambda **kwargs: None, FileContents: lambda **kwargs: None,
            FindInFile: lambda **kwargs: [],
        Sha1File: lambda **kwargs: None, Sha256File: lambda **kwargs: None, Command: lambda **kwargs: "stopped",
        TmpDir: "/tmp", Which: lambda **kwargs: None, SystemdEnabled: {}, SystemdStatus: {},
        ComposeServices: lambda **kwargs: {}, DockerServerVersion: None,
        Port: lambda **kwargs: None, PublishedFor: lambda **kwargs: (),
        ImagesInUse: lambda **kwargs: ImagesInUse.default(),
        GPUContainerCheck: lambda **kwargs: {"ok": True, "output": ""}, CertificateState: lambda **kwargs: None,
        WindowsScheduledTask: lambda **kwargs: None,
        PackageManagerState: {"busy": [], "interrupted": False},
        AccountIds: lambda **kwargs: {"uid": None, "gid": None}, EngineRuntimes: None,
    }
