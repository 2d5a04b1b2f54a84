"""HubSettings: every concern's settings as one model, with the rules that span concerns."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ConfigDict, field_validator, model_validator

from jupyterhub_gpu.settings.accounts import AccountSettings, LdapSettings, NativeSettings, OAuthSettings
from jupyterhub_gpu.settings.addresses import AddressSettings, TlsSettings
from jupyterhub_gpu.settings.gpus import GpuSettings
from jupyterhub_gpu.settings.host import ClusterSettings, HostSettings, WslSettings
from jupyterhub_gpu.settings.images import ImageSettings
from jupyterhub_gpu.settings.servers import CullingSettings, LimitSettings, SpawnSettings
from jupyterhub_gpu.settings.sharing import SharingSettings
from jupyterhub_gpu.settings.types import TRUST_URLS

# The concerns in this order make the settings reference (docs): one section each.
CONCERNS = (AddressSettings, TlsSettings, HostSettings, ImageSettings, AccountSettings, NativeSettings,
            LdapSettings, OAuthSettings, GpuSettings, LimitSettings, SpawnSettings, CullingSettings,
            SharingSettings, WslSettings, ClusterSettings)


class HubSettings(*CONCERNS):
    """What one target host should run: every concern's settings, as flat keys (pyinfra's and Ansible's
    convention). Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("tls_cert_file", "tls_key_file", "acme_dns_credentials", "acme_ca_bundle", "ldap_ca_file",
                     "ldap_search_password_file", "oauth_client_secret_file")
    @classmethod
    def _controller_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{str(path)!r} is not a file on the controller")
        return path

    @model_validator(mode="after")
    def _trust_comes_over_https(self):
        if self.allow_plain_http:
            return self
        plain = [f"{name} = {getattr(self, name)!r}" for name in TRUST_URLS
                 if (getattr(self, name) or "").startswith("http://")]
        if plain:
            raise ValueError(f"{'; '.join(plain)}: plain http:// lets anyone on the way change what it answers; "
                             "use https://, or set allow_plain_http: true for a network you trust")
        return self

    @model_validator(mode="after")
    def _tls_mode_has_what_it_needs(self):
        required = {
            "letsencrypt": ["acme_email"] + (["acme_dns_plugin", "acme_dns_credentials"]
                                             if self.acme_challenge == "dns-01" else []),
            "provided": ["tls_cert_file", "tls_key_file"],
        }.get(self.tls_mode, [])
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"tls_mode {self.tls_mode!r} needs {', '.join(missing)}")
        if self.tls_mode == "letsencrypt" and not self.hub_names:
            raise ValueError("tls_mode 'letsencrypt' needs hub_names: the public DNS names to certify")
        http_01 = self.tls_mode == "letsencrypt" and self.acme_challenge == "http-01"
        if http_01 and 80 in (self.https_port, self.http_port):
            raise ValueError("certbot's HTTP-01 answers need port 80, which https_port or http_port takes; "
                             "use another port or acme_challenge: dns-01")
        return self

    @model_validator(mode="after")
    def _authenticator_has_what_it_needs(self):
        kind = self.authenticator
        if kind in ("shared-password", "dummy") and not self.insecure_test_mode:
            raise ValueError(f"authenticator {kind!r} lets anyone who knows one password in (or, for dummy, anyone "
                             "at all): it is for tests only and needs insecure_test_mode: true; "
                             "for people use native, ldap or oauth")
        if kind == "native" and self.allowed_users:
            raise ValueError(f"allowed_users = {self.allowed_users!r}: with authenticator 'native' these names skip an "
                             "admin's approval, so whoever signs up first under one of them gets in; leave it empty "
                             "(an admin approves each sign-up at /hub/authorize), or use ldap or oauth")
        if kind in ("ldap", "oauth") and not (self.allowed_users or self.allowed_groups or self.allow_all):
            raise ValueError(f"authenticator {kind!r} needs an allow rule: allowed_users, allowed_groups, "
                             "or allow_all: true (everyone the provider authenticates)")
        if kind == "ldap":
            self._ldap_has_what_it_needs()
        if kind == "oauth":
            self._oauth_has_what_it_needs()
        return self

    def _ldap_has_what_it_needs(self) -> None:
        if self.ldap_server_address is None:
            raise ValueError("authenticator 'ldap' needs ldap_server_address")
        searching = [self.ldap_user_search_base, self.ldap_search_user, self.ldap_search_password_file]
        if not self.ldap_bind_dn_template and not all(searching):
            raise ValueError("authenticator 'ldap' needs ldap_bind_dn_template, or ldap_user_search_base with "
                             "ldap_search_user and ldap_search_password_file")
        if any(searching) and not all(searching):
            raise ValueError("ldap_user_search_base, ldap_search_user and ldap_search_password_file go together")

    def _oauth_has_what_it_needs(self) -> None:
        missing = [name for name in ("oauth_client_id",) if getattr(self, name) is None]
        if (self.oauth_client_secret_file is None) == (self.oauth_client_secret_env is None):
            missing.append("exactly one of oauth_client_secret_file, oauth_client_secret_env")
        if self.oauth_provider == "generic":
            endpoints = [self.oauth_authorize_url, self.oauth_token_url, self.oauth_userdata_url]
            if self.oauth_issuer_url is None and not all(endpoints):
                missing.append("oauth_issuer_url (or oauth_authorize_url, oauth_token_url and oauth_userdata_url)")
        if self.oauth_provider == "azuread" and self.oauth_azuread_tenant_id is None:
            missing.append("oauth_azuread_tenant_id")
        if not self.hub_names and self.oauth_callback_url is None:
            missing.append("hub_names or oauth_callback_url (the address registered with the provider)")
        if missing:
            raise ValueError(f"authenticator 'oauth' ({self.oauth_provider}) needs {'; '.join(missing)}")
        if self.oauth_client_secret_env and not os.environ.get(self.oauth_client_secret_env):
            raise ValueError(f"oauth_client_secret_env = {self.oauth_client_secret_env!r}: that variable is "
                             "not set on the controller")
