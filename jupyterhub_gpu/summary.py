"""What the deploy tells its user at the very end, after pyinfra's results: per host, where the hub is."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api.state import BaseStateCallback

from gpudockerspawner.gpu_rules import group_rules

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


def warn_if_insecure(summary: HostSummary, target) -> None:
    """A hub that lets in anyone with one password, or sends people's passwords in the clear, says so, during the
    deploy and at its end."""
    settings = target.settings
    if settings.insecure_test_mode and settings.authenticator in ("shared-password", "dummy"):
        insecure = (f"INSECURE TEST MODE: authenticator {settings.authenticator} lets in anyone who knows "
                    "one password; never let people use this hub")
    elif settings.authenticator == "ldap" and settings.ldap_tls == "insecure":
        insecure = (f"ldap_tls is insecure: every login sends its password to {settings.ldap_server_address} in the "
                    "clear; use on_connect (ldaps) or before_bind (STARTTLS)")
    else:
        return
    host.log(insecure, log_func=logger.warning)
    summary.warn(insecure)


def say_where_the_hub_is(summary: HostSummary, target, provisioned) -> None:
    """The closing lines of a deploy that brought a hub up: where it answers, its GPUs, how admins get in; on a
    cluster's GPU node, whose swarm it serves and with which GPUs."""
    if not target.runs_hub:
        gpus = [gpu for gpu in target.gpus.gpus if gpu.uuid in target.gpu_pool]
        summary.say(f"a GPU node of the swarm that {target.cluster.manager} manages: it runs user servers, with "
                    + (f"{len(gpus)} GPUs for Swarm to hand out: " + "; ".join(map(_described, gpus))
                       if gpus else "no GPU (CPU-only servers)"))
        for line in provisioned.uptime.said:
            summary.say(line)
        return
    if target.profile.wsl and len(target.gpu_pool) > 1:
        summary.warn(f"this is a WSL2 host with {len(target.gpu_pool)} GPUs: WSL2 shows every container every "
                     "GPU, so which GPU a user holds is advisory here (see docs/how-to/wsl.md, GPUs)")
    summary.say(f"JupyterHub answers at {target.hub_url}")
    if target.user_domain:
        summary.say(f"each user's server has an origin of its own, https://<user>.{target.user_domain}/"
                    + (f" ({target.one_origin_why})" if target.one_origin_why else ""))
    else:
        summary.say(f"every user's server shares the hub's origin ({target.one_origin_why}): a page one user serves "
                    "can act with another's login in their browser; see user_subdomains")
    certificate = provisioned.certificate
    if certificate.ca_remade_for:
        summary.warn(f"the local CA was made anew, for {certificate.ca_remade_for} (the hub's names or addresses "
                     "changed, and a CA vouches only for those it was made for): browsers that trusted the one before "
                     f"refuse the hub until they import {certificate.ca} again")
    elif certificate.ca:
        summary.say(f"browsers trust it once they import the local CA {certificate.ca}")
    if target.gpu_pool:
        pool = [gpu for gpu in target.gpus.gpus if gpu.uuid in target.gpu_pool]
        summary.say(f"it hands out {len(pool)} GPU{'s' if len(pool) > 1 else ''}, {target.settings.gpus_per_user} "
                    "per server: " + "; ".join(map(_described, pool)))
    elif target.cluster:
        summary.say(f"its servers run on the swarm's GPU nodes ({', '.join(target.cluster.nodes)}); Docker Swarm "
                    f"hands out their GPUs, {target.settings.gpus_per_user} per server")
    else:
        summary.say("it has no GPU to hand out: every server is CPU-only")
    if target.gpu_pool or target.cluster:
        summary.say(gpu_access(target.settings))
    for admin, path in provisioned.secrets.admin_passwords.items():
        summary.say(f"admin {admin} logs in with the password in {path} (root only)")
    if target.settings.authenticator == "native":
        summary.say("new users sign up at /hub/signup; admins approve them at /hub/authorize")
    for line in provisioned.uptime.said:
        summary.say(line)


def _described(gpu) -> str:
    """A unit as the closing lines name it: "0 GeForce RTX 4090 23 GiB (GPU-…)", "0:1 MIG 1g.10gb slice of an
    A100-SXM4-80GB 9 GiB (MIG-…)"."""
    return f"{gpu.index} {gpu.label} {gpu.memory_mib // 1024} GiB ({gpu.uuid})"


def gpu_access(settings) -> str:
    """Who may have a GPU and what a spawn that finds none free does, in a line."""
    groups = settings.gpu_groups
    if not groups:
        who = "everyone may have one"
    elif not any(groups.values()):
        who = f"members of {', '.join(groups)} may have one"
    else:
        # The rules as the spawner will apply them.
        rules = group_rules(groups, settings.gpus_per_user)
        who = "by group: " + "; ".join(
            f"{rule.group} {rule.gpus_per_user} per server" + (f", at most {rule.max_gpus} together" if rule.max_gpus
                                                               else "") for rule in rules)
    when = {"refuse": "refused with a message", "cpu": "started CPU-only",
            "wait": f"put in line for the next GPU released (for up to {settings.gpu_wait_timeout // 60} min)"}
    return f"GPUs: {who}; a spawn that finds none free for it is {when[settings.gpu_on_exhausted]}"
