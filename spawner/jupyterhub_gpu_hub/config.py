"""The hub's configuration, applied to the deploy's settings (``contract.HubContract``): the code that the static
``jupyterhub_config.py`` calls, so that it can be imported and tested like any module. Settings arrive as data;
secrets are read from files under ``/run/secrets``; nothing here is generated."""

from __future__ import annotations

import html
import json
import logging
import math
import os
import time
from pathlib import Path
from urllib.parse import quote

from jupyterhub_gpu_hub.contract import Authenticator, Culler, GpuFigures, Hub, HubContract, Profile, Spawner


def secrets_dir() -> Path:
    """Where the deploy's secrets are mounted (a test points elsewhere)."""
    return Path(os.environ.get("JUPYTERHUB_GPU_SECRETS", "/run/secrets"))


def data_dir() -> Path:
    """The hub database's volume: only what outlives a container belongs here."""
    return Path(os.environ.get("JUPYTERHUB_GPU_DATA", "/srv/jupyterhub"))


HOME = "/home/jovyan"
# Docker's default capabilities without NET_RAW (raw sockets: spoofing on the shared network) and
# NET_BIND_SERVICE (ports below 1024).
SUDO_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "SYS_CHROOT",
                     "MKNOD", "AUDIT_WRITE", "SETFCAP"]


log = logging.getLogger("JupyterHub")
# How long the home page says why someone's last server was culled.
NOTICE_FOR = 12 * 3600


def secret(name: str) -> str:
    return (secrets_dir() / name).read_text().strip()


# The spawner's settings the GPU service reads the budgets by (for the admins' GPU-hours page).
BUDGET_TRAITS = ("gpu_groups", "gpu_hours", "budget_period", "budget_timezone", "budget_grace")


def budget_settings(spawner_config) -> dict:
    """The budgets' traits as set in ``spawner_config`` (c.GPUDockerSpawner; none where it is None)."""
    return {name: spawner_config[name] for name in BUDGET_TRAITS if spawner_config and name in spawner_config}


def gpu_service_environment(figures: GpuFigures, spawner_config=None) -> dict:
    """Where the GPU service finds the samplers and the usage record, and where it leaves its figures; the GPU
    budgets as the spawner's configuration (``spawner_config``, c.GPUDockerSpawner) has them."""
    from gpudockerspawner.service import ENV

    budgets = budget_settings(spawner_config)
    return {ENV["samplers"]: json.dumps(figures.samplers), ENV["on_nodes"]: "1" if figures.on_nodes else "",
            ENV["interval"]: str(figures.interval), ENV["busy_at"]: str(figures.busy_at),
            ENV["figures"]: figures.figures_file, ENV["usage"]: figures.usage_db,
            ENV["budgets"]: json.dumps(budgets)}


def configure_gpu_figures(c, figures: GpuFigures) -> None:
    """Who held which GPUs when (the spawner's usage record), the GPUs' figures on /hub/metrics, and a person told
    on the home page and the spawn page why their last server was culled."""
    from gpudockerspawner import metrics
    from gpudockerspawner.budget_standings import Budgets
    from gpudockerspawner.budgets import WARN_BEFORE, WARN_USED, clock
    from gpudockerspawner.culling import CULLED
    from gpudockerspawner.usage import UsageLog

    c.GPUDockerSpawner.usage_db = figures.usage_db
    metrics.register_figures(figures.figures_file, figures.usage_db)
    metrics.register_budgets(figures.usage_db, Budgets(budget_settings(c.GPUDockerSpawner)))
    usage = UsageLog(figures.usage_db)

    def budget_notice(spawner) -> str:
        """A running GPU server's budget: what is left, and, as its end nears, when the server stops."""
        found, runs_out = spawner.budget_now()
        if found is None:
            return ""
        said = found.sentence() + "."
        # As the end nears (80 % used, or its running out within 15 minutes), and only where it runs out before the
        # period renews: when the server stops.
        if runs_out < math.inf and (found.used >= WARN_USED * found.limit or runs_out - time.time() <= WARN_BEFORE):
            said += (f" At this pace your GPU server stops at about {clock(runs_out + spawner.budget_grace * 60)}: "
                     "save your work.")
        return f'<span id="gpu-budget-notice">{html.escape(said)}</span>'

    def culled_notice(user) -> str:
        if user is None:
            return ""
        if user.spawner.active:
            return budget_notice(user.spawner) if hasattr(user.spawner, "budget_now") else ""
        last = usage.last_ended(user.name, "")
        if last is None or not (last.reason or "").startswith(CULLED) or time.time() - last.ended > NOTICE_FOR:
            return ""
        # The hub's templates show this as it is: escaped here.
        return ('<span id="gpu-cull-notice">Your server was stopped at '
                f'{time.strftime("%H:%M UTC", time.gmtime(last.ended))}'
                f": {html.escape(last.reason[len(CULLED):])}. Your files are kept; start it again when you need it."
                "</span>")

    c.JupyterHub.template_vars = {"announcement_home": culled_notice, "announcement_spawn": culled_notice}


def configure_hub(c, hub: Hub, figures: GpuFigures) -> None:
    # The proxy runs in a container of its own, which terminates TLS: the hub only speaks to it.
    c.JupyterHub.bind_url = hub.public_url
    if hub.subdomain_host:
        # Each user's server is an origin of its own, <user>.<hub name>: a page one user serves cannot act with
        # another's login (JupyterHub's security documentation recommends it for untrusted users).
        c.JupyterHub.subdomain_host = hub.subdomain_host
        # And the hub's cookies __Host- ones: a page on <user>.<hub name> can set a cookie for the whole domain
        # (its own login, say), which a later visit to the hub would take as the visitor's (login fixation). A
        # __Host- cookie can only come from the hub's own origin, and without a Domain.
        c.JupyterHub.cookie_host_prefix_enabled = True
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = "http://jupyterhub-proxy:8001"
    headers = {}
    if hub.hsts_max_age:
        headers["Strict-Transport-Security"] = f"max-age={hub.hsts_max_age}"
    # cookie_options reach every cookie of the hub, its _xsrf one, and (through JUPYTERHUB_COOKIE_OPTIONS) those
    # of user servers, which see plain HTTP from the proxy and would not mark them Secure themselves.
    c.JupyterHub.tornado_settings = {"headers": headers, "cookie_options": {"secure": True}}
    c.JupyterHub.hub_ip = "0.0.0.0"
    # Below 1024: no user container can listen there, so the firewall lets servers reach this port only.
    c.JupyterHub.hub_port = hub.api_port
    c.JupyterHub.hub_connect_ip = "jupyterhub"
    c.JupyterHub.db_url = f"sqlite:///{data_dir() / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(secrets_dir() / "cookie_secret")
    c.ConfigurableHTTPProxy.auth_token = secret("proxy_token")
    # Earlier deploys ran the proxy in the hub and kept its pid on the volume, where a stale one could make a
    # restarted hub exit for good.
    (data_dir() / "jupyterhub-proxy.pid").unlink(missing_ok=True)
    # User servers outlive the hub: restarts and re-deploys of the hub must not stop them.
    c.JupyterHub.cleanup_servers = False
    c.Authenticator.admin_users = set(hub.admin_users)

    from gpudockerspawner import service as gpu_service

    # The proxy, in its own container, reaches the service by the hub container's name.
    environment = {**gpu_service_environment(figures, c.GPUDockerSpawner),
                   gpu_service.ENV["servers_port"]: str(hub.view_port)}
    services = [gpu_service.hub_service(host="jupyterhub", environment=environment)]
    roles = gpu_service.hub_roles()
    if hub.ops_token:
        services.append({"name": "jupyterhub-gpu-ops", "api_token": secret("ops_api_token")})
        roles.append({"name": "jupyterhub-gpu-ops", "scopes": hub.ops_token_scopes,
                      "services": ["jupyterhub-gpu-ops"]})
    if hub.metrics_token:
        # authenticate_prometheus stays on (JupyterHub's default): /hub/metrics answers this token, not everyone.
        services.append({"name": "jupyterhub-gpu-metrics", "api_token": secret("metrics_api_token")})
        roles.append({"name": "jupyterhub-gpu-metrics", "scopes": ["read:metrics"],
                      "services": ["jupyterhub-gpu-metrics"]})
    check = hub.gpu_check
    if check:
        # Its servers hold a GPU whatever gpu_groups says, and count against no group's cap.
        c.GPUDockerSpawner.gpu_users = [check.user]
        # bin/gpu-check's throwaway servers belong to a user of their own, made here (JupyterHub creates the users
        # that roles name); its token may start and stop that user's servers only.
        services.append({"name": check.service, "api_token": secret("gpu_check_api_token")})
        roles.append({"name": check.service, "scopes": check.scopes, "services": [check.service]})
        roles.append({"name": f"{check.user}-user", "scopes": ["self"], "users": [check.user]})
    # How often the hub reads the proxy's record of each route's traffic (what "idle" means to the cullers) and
    # then puts back the routes that a restarted proxy lost (JupyterHub's update_last_activity ends with
    # check_routes): at most every 30 s, so that a proxy that restarts has every server back within that.
    c.JupyterHub.last_activity_interval = min(30, hub.activity_interval)
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


def configure_culler(c, culler: Culler, figures: GpuFigures) -> None:
    """Idle servers stopped by jupyterhub-idle-culler; GPU servers by a culler of their own, sooner; the GPUs'
    own idleness or work counted where the settings say so."""
    from gpudockerspawner import culling

    rules = culling.CullRules(gpu_idle=culler.gpu_idle, busy_keeps=culler.busy_keeps,
                              busy_at=culler.busy_at, figures_file=figures.figures_file,
                              usage_db=figures.usage_db)
    limits = {key: getattr(culler, key) for key in ("idle_timeout", "max_age", "gpu_idle_timeout", "gpu_max_age",
                                                    "cull_every")}
    services = culling.hub_services(**limits, rules=rules)
    # The GPU service tells each server when it will be stopped, as these cullers will act.
    from gpudockerspawner import service as gpu_service
    from gpudockerspawner.server_view import Stops

    stops = Stops(gpu_idle_timeout=culler.gpu_idle_timeout, gpu_idle=culler.gpu_idle, gpu_max_age=culler.gpu_max_age,
                  max_age=culler.max_age, cull_every=culler.cull_every, warnings=tuple(culler.warnings))
    for service in c.JupyterHub.services:
        if service["name"] == gpu_service.NAME:
            service["environment"][gpu_service.ENV["stops"]] = stops.to_json()
    c.JupyterHub.services = list(c.JupyterHub.services) + services
    c.JupyterHub.load_roles = list(c.JupyterHub.load_roles) + culling.hub_roles(services)


def configure_spawner(c, spawner: Spawner) -> None:
    c.JupyterHub.spawner_class = "gpudockerspawner.GPUDockerSpawner"
    swarm = spawner.swarm
    if swarm:
        # A cluster: each server a Swarm service on a GPU node, Swarm handing out the GPUs. The settings below
        # (c.GPUDockerSpawner) apply to it too, as to any subclass.
        c.JupyterHub.spawner_class = "gpudockerspawner.swarm.GPUSwarmSpawner"
        # No host firewall sees the overlay network's traffic between containers: each server's entry point
        # fences it in (the hub's API port only), and in the cluster no-new-privileges is the entry point's too.
        c.GPUSwarmSpawner.fence_network = True
        if swarm.home_volume_driver:
            c.GPUSwarmSpawner.volume_driver = swarm.home_volume_driver
            c.GPUSwarmSpawner.volume_driver_options = swarm.home_volume_driver_options
    c.GPUDockerSpawner.image = spawner.image
    # The proxy reaches each server at its container's address on the network. The address can change when
    # the engine or the host restarts; the hub then restarts too and reads each server's address anew.
    # (Not by container name: the hub's HTTP client caches names for seconds, and a server stopped and
    # started again in that time would be looked for at its old address.)
    c.GPUDockerSpawner.use_internal_ip = True
    # Servers are removed when they stop (a fresh container each start), yet a server that was running when
    # the engine or the host went down comes back with it: a restart policy, and so no auto-remove. "always",
    # because Docker 20.10 leaves "unless-stopped" containers down after its engine was killed.
    if not swarm:  # a Swarm service's containers are always removed with it
        c.GPUDockerSpawner.remove = True
    sudo_groups = frozenset(spawner.sudo_groups)

    def may_sudo(s) -> bool:
        return bool(sudo_groups & {group.name for group in s.user.groups})

    def host_config(s) -> dict:
        # cpu_shares: under load the hub and the proxy (Docker's 1024) outweigh each user container.
        # Docker lets any process in a container bind any port (ip_unprivileged_port_start 0): back to 1024, so
        # that no user can listen on the hub's API port, which the firewall lets every container reach.
        limits = {"restart_policy": {"Name": "always"}, "auto_remove": False, "pids_limit": spawner.pids_limit,
                  "cpu_shares": spawner.cpu_shares, "cap_drop": ["ALL"],
                  "sysctls": {"net.ipv4.ip_unprivileged_port_start": "1024"}}
        if may_sudo(s):
            # sudo needs a setuid binary (so new privileges) and root's usual powers, bar raw sockets and
            # privileged ports (the hub's API port is one: no container may pose as the hub).
            return {**limits, "cap_add": SUDO_CAPABILITIES}
        # The entry point needs only to become jovyan; after that the container can gain nothing.
        return {**limits, "cap_add": ["SETUID", "SETGID"], "security_opt": ["no-new-privileges"]}

    c.GPUDockerSpawner.extra_host_config = host_config
    c.GPUDockerSpawner.notebook_dir = HOME
    c.GPUDockerSpawner.volumes = {spawner.home_volume_prefix + "{username}": HOME}
    c.GPUDockerSpawner.shared_volume_prefix = spawner.shared_volume_prefix
    c.GPUDockerSpawner.gpu_ids = spawner.gpu_ids
    c.GPUDockerSpawner.gpu_units = spawner.gpu_units
    # WSL2's GPU driver shows every container every GPU: there the assignment is advisory.
    c.GPUDockerSpawner.devices_filtered = spawner.devices_filtered
    c.GPUDockerSpawner.pool_label = spawner.pool_label
    if spawner.mem_limit:
        c.GPUDockerSpawner.mem_limit = spawner.mem_limit
    if spawner.cpu_limit:
        c.GPUDockerSpawner.cpu_limit = spawner.cpu_limit
    if len(spawner.profiles) > 1:
        _offer_profiles(c, spawner.profiles)
    # Sized for a class logging in at once on a small host: servers start a few at a time, the rest wait
    # in line (the wait counts against start_timeout), and none is given up on while the host is busy.
    c.GPUDockerSpawner.spawns_at_once = spawner.spawns_at_once
    # User servers see plain HTTP from the proxy: their _xsrf cookie is marked Secure here (their login cookies
    # through JUPYTERHUB_COOKIE_OPTIONS), and HSTS is sent where the hub sends it.
    server_settings = {"xsrf_cookie_kwargs": {"secure": True}}
    if spawner.hsts_max_age:
        server_settings["headers"] = {"Strict-Transport-Security": f"max-age={spawner.hsts_max_age}"}
    # Read back by traitlets with ast.literal_eval: Python's literal form, not JSON.
    c.GPUDockerSpawner.args = ["--ServerApp.tornado_settings=" + repr(server_settings)]
    # The built image starts as root only to set up sudo (or not) and then runs the server as jovyan. An image
    # made elsewhere runs as the user it names, and is refused where that is root: its entry point may drop
    # nothing (so sudo_groups give no sudo there).
    own_user = frozenset(spawner.own_user_images)
    c.GPUDockerSpawner.own_user_images = sorted(own_user)
    c.GPUDockerSpawner.extra_create_kwargs = lambda s: {} if s.image in own_user else {"user": "root"}
    # Each server tells the hub this often when it (a kernel included) was last active.
    c.GPUDockerSpawner.environment = {"GRANT_SUDO": lambda s: "yes" if may_sudo(s) else "no",
                                      "JUPYTERHUB_ACTIVITY_INTERVAL": str(spawner.activity_interval)}


def _offer_profiles(c, profiles: list[Profile]) -> None:
    """The spawn form's image profiles: GPU ones only to users who may have a GPU (and first for them, so that
    their form opens on what they came for); a GPU profile's servers hold a GPU, the others' none."""

    def offered(s) -> dict:
        may = s.may_use_gpu()
        usable = [p for p in profiles if may and p.gpu] + [p for p in profiles if not p.gpu]
        return {p.name: p.image for p in usable}

    c.GPUDockerSpawner.allowed_images = offered
    c.GPUDockerSpawner.gpu_images = [p.name for p in profiles if p.gpu]
    c.GPUDockerSpawner.kinds_by_image = {p.name: p.gpu_kinds for p in profiles if p.gpu and p.gpu_kinds}
    c.GPUDockerSpawner.limits_by_image = {
        p.name: {key: getattr(p, key) for key in ("cpu_limit", "mem_limit") if getattr(p, key)} for p in profiles}


def configure_authenticator(c, auth: Authenticator) -> None:
    kind = auth.kind
    if auth.allowed_users:
        c.Authenticator.allowed_users = set(auth.allowed_users)
    c.Authenticator.allow_all = auth.allow_all
    # Nobody logs in under the service accounts' names, whatever the identity provider says.
    from jupyterhub_gpu_accounts.reserved import refusing

    c.Authenticator.post_auth_hook = refusing(auth.reserved_names)
    {
        "native": _native,
        "ldap": _ldap,
        "oauth": _oauth,
        "shared-password": _shared_password,
        "dummy": _dummy,
    }[kind](c, auth)


def _native(c, auth: Authenticator) -> None:
    # Imported here: only the native path needs nativeauthenticator.
    from jupyterhub_gpu_accounts.native import DeployedNativeAuthenticator

    c.JupyterHub.authenticator_class = DeployedNativeAuthenticator
    c.DeployedNativeAuthenticator.password_files_dir = str(secrets_dir())
    c.DeployedNativeAuthenticator.applied_file = str(data_dir() / "admin-passwords-applied.json")
    c.DeployedNativeAuthenticator.reserved_names = set(auth.reserved_names)
    # The proxy appends the address it saw to X-Forwarded-For; from anywhere else (a user container reaches the
    # hub's port directly) a request's address is its TCP peer's, whatever its headers say.
    c.DeployedNativeAuthenticator.trusted_proxies = ["jupyterhub-proxy"]
    # An admin's approval at /hub/authorize is the allow rule: without allow_all, JupyterHub 5+ would
    # refuse every approved user whose name is not also listed in allowed_users.
    c.Authenticator.allow_all = True


def _ldap(c, auth: Authenticator) -> None:
    ldap = auth.ldap
    c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
    if ldap.ca_file:
        c.LDAPAuthenticator.tls_kwargs = {"ca_certs_file": str(secrets_dir() / ldap.ca_file)}
    if ldap.looks_up_dn:
        c.LDAPAuthenticator.lookup_dn = True
        c.LDAPAuthenticator.lookup_dn_search_password = secret("ldap_search_password")
    if auth.allowed_groups:
        c.LDAPAuthenticator.allowed_groups = auth.allowed_groups


def _oauth(c, auth: Authenticator) -> None:
    oauth = auth.oauth
    provider = oauth.provider
    classes = {
        "generic": ("oauthenticator.generic.GenericOAuthenticator", "GenericOAuthenticator"),
        "github": ("oauthenticator.github.GitHubOAuthenticator", "GitHubOAuthenticator"),
        "gitlab": ("oauthenticator.gitlab.GitLabOAuthenticator", "GitLabOAuthenticator"),
        "azuread": ("oauthenticator.azuread.AzureAdOAuthenticator", "AzureAdOAuthenticator"),
    }
    class_path, name = classes[provider]
    c.JupyterHub.authenticator_class = class_path
    section = c[name]
    section.client_secret = secret("oauth_client_secret")
    section.oauth_callback_url = oauth.callback_url
    groups = auth.allowed_groups
    if provider == "generic":
        section.authorize_url = oauth.authorize_url
        section.token_url = oauth.token_url
        section.userdata_url = oauth.userdata_url
        section.scope = oauth.scopes
        section.username_claim = oauth.username_claim
        # The provider's groups become hub groups (for allowed_groups, and for sudo_groups).
        section.manage_groups = True
        section.auth_state_groups_key = "oauth_user." + oauth.groups_claim
        if groups:
            section.allowed_groups = set(groups)
    elif provider == "github":
        if groups:
            section.allowed_organizations = set(groups)
            section.scope = ["read:org"]
    elif provider == "gitlab":
        if groups:
            section.allowed_gitlab_groups = set(groups)
    elif provider == "azuread":
        section.username_claim = oauth.username_claim
        if groups:
            section.manage_groups = True
            section.allowed_groups = set(groups)


def _insecure(kind: str) -> None:
    log.warning("!" * 78)
    log.warning("INSECURE TEST MODE: authenticator %r lets in anyone who knows one shared password%s.", kind,
                " (or any password at all)" if kind == "dummy" else "")
    log.warning("This hub is for tests only; never let people use it (insecure_test_mode: true).")
    log.warning("!" * 78)


def _shared_password(c, auth: Authenticator) -> None:
    _insecure("shared-password")
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = secret("shared_password")
    c.SharedPasswordAuthenticator.admin_password = secret("shared_admin_password")


def _dummy(c, auth: Authenticator) -> None:
    _insecure("dummy")
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = secret("shared_password")


def configure_gpu_view(c, hub: Hub) -> None:
    """Each server's JupyterLab shows its GPU (the lab extension in the built images): its server asks the GPU
    service, at the service's port for servers, with its own API token, which may use that service and nothing a
    server's token could not do before (JupyterHub's ``server`` role)."""
    from gpudockerspawner import service as gpu_service

    c.GPUDockerSpawner.server_token_scopes = ["users:activity!user", "access:servers!server",
                                              f"access:services!service={gpu_service.NAME}"]
    view_url = f"http://jupyterhub:{hub.view_port}/services/{gpu_service.NAME}/api/me"
    c.GPUDockerSpawner.environment = {**c.GPUDockerSpawner.environment, gpu_service.VIEW_URL_ENV: view_url}
    c.GPUSwarmSpawner.fence_ports = [hub.view_port]


# What sharing needs of a person's permissions (JupyterHub's sharing documentation): sharing their own servers, and
# naming the user or group to share with. The GPU service's sharing page asks the hub with the person's own token,
# which may carry these and nothing more.
SHARE_SCOPES = ["shares!user", "read:users:name", "read:groups:name"]
REVOKED_WITHIN = 30


def configure_sharing(c, hub: Hub) -> None:
    """People share their running servers with a person, a group or by a link, on the GPU service's sharing page
    (``hub.sharing``); off, nobody has the scope to share."""
    from gpudockerspawner import service as gpu_service
    from gpudockerspawner.sharing import SHARING_ENV

    for service in c.JupyterHub.services:
        if service["name"] == gpu_service.NAME:
            service["environment"][SHARING_ENV] = "1" if hub.sharing else ""
            if hub.sharing:
                service["oauth_client_allowed_scopes"] = SHARE_SCOPES
    if not hub.sharing:
        return
    for role in c.JupyterHub.load_roles:
        if role["name"] == "user":
            role["scopes"] = [*role["scopes"], *SHARE_SCOPES]
    # A server asks the hub again who a browser's token is and what it may do after this many seconds (JupyterHub's
    # default is 5 minutes): a share its owner revoked stops letting its guest in within half a minute.
    c.GPUDockerSpawner.args = [*c.GPUDockerSpawner.args, f"--HubOAuth.cache_max_age={REVOKED_WITHIN}"]
    share_page = f"/services/{gpu_service.NAME}/share"
    home = c.JupyterHub.template_vars.get("announcement_home") or (lambda user: "")

    def shares_notice(user) -> str:
        """The home page: the servers shared with this person (to open without a server of their own), and where
        to share theirs."""
        said = home(user)
        if user is None:
            return said
        servers = sorted({(share.owner.name, share.spawner.name) for share in user.orm_user.all_shared_with_me
                          if share.spawner is not None and share.owner is not None})
        links = ", ".join(f'<a class="gpu-shared-server" href="/user/{quote(owner)}/{quote(server)}">'
                          f'{html.escape(owner)}'
                          f'{"/" + html.escape(server) if server else ""}\'s server</a>' for owner, server in servers)
        shared = f'<span id="gpu-shared-with-me">Shared with you: {links}.</span> ' if links else ""
        # Where to share one's own server, while it runs (what there is to share).
        share = (f'<a id="gpu-share-link" href="{share_page}">Share your server</a>' if user.spawner.active
                 else "")
        return f"{said} {shared}{share}".strip()

    c.JupyterHub.template_vars = {**c.JupyterHub.template_vars, "announcement_home": shares_notice}


def set_traits(c, traits: dict) -> None:
    """The settings that map one to one onto a trait (``{"Class.trait": value}``, see hub_traits in the deploy's
    settings): set as they are."""
    for target, value in traits.items():
        section, name = target.rsplit(".", 1)
        setattr(c[section], name, value)


def apply(c, settings: HubContract) -> None:
    set_traits(c, settings.traits)
    configure_hub(c, settings.hub, settings.gpu_figures)
    configure_authenticator(c, settings.authenticator)
    configure_spawner(c, settings.spawner)
    configure_gpu_view(c, settings.hub)
    configure_gpu_figures(c, settings.gpu_figures)
    configure_culler(c, settings.culler, settings.gpu_figures)
    configure_sharing(c, settings.hub)
