"""What the deploy tells its user at the very end, after pyinfra's results: per host, where the hub is."""

from __future__ import annotations

from pyinfra import logger
from pyinfra.api.state import BaseStateCallback

_PREFIX = "--> "


class Summary(BaseStateCallback):
    """Lines said per host, printed when pyinfra disconnects from it (its last output), for hosts whose
    deploy succeeded; warnings are printed for every host."""

    def __init__(self):
        self.lines: dict[str, list[tuple[bool, str]]] = {}

    @classmethod
    def for_host(cls, state, host) -> HostSummary:
        handler = next((h for h in state.callback_handlers if isinstance(h, cls)), None)
        if handler is None:
            handler = cls()
            state.add_callback_handler(handler)
        return HostSummary(handler.lines.setdefault(host.name, []))

    def host_disconnect(self, state, host) -> None:
        lines = self.lines.pop(host.name, [])
        failed = host in state.failed_hosts
        for warning, text in lines:
            if warning:
                logger.warning(f"{_PREFIX}{host.name}: {text}")
            elif not failed:
                logger.info(f"{_PREFIX}{host.name}: {text}")


class HostSummary:
    def __init__(self, lines: list):
        self._lines = lines

    def say(self, text: str) -> None:
        self._lines.append((False, text))

    def warn(self, text: str) -> None:
        self._lines.append((True, text))
