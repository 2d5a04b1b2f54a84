"""Who logs in and how: accounts, and the native, LDAP and OAuth authenticators."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from jupyterhub_gpu.settings.concern import Concern, trait
from jupyterhub_gpu.settings.types import (
    AllowedGroup,
    EnvName,
    GroupName,
    HttpUrl,
    LdapDn,
    LdapHost,
    LdapTemplate,
    OAuthScope,
    Regex,
    Username,
)


class AccountSettings(Concern):
    """Who logs in, how, and what they may do: admins, the authenticator, allow rules, sudo, tokens."""

    title: ClassVar[str] = "Accounts and logins"

    admin_users: list[Username] = Field(
        default_factory=lambda: ["admin"],
        description="Hub admins. With the native authenticator the deploy creates each admin's account with a "
        "generated password, kept on the host in `<install_dir>/secrets/admin-password-<name>` (mode 0600); "
        "nobody can sign up under these names. Admins approve other users at `/hub/authorize`.",
    )
    authenticator: Literal["native", "ldap", "oauth", "shared-password", "dummy"] = Field(
        default="native",
        description="How people log in: `native` (accounts on the hub, sign-up approved by an admin), `ldap` "
        "(a directory), `oauth` (an OpenID Connect or OAuth provider, see `oauth_provider`). "
        "`shared-password` and `dummy` are for tests and need `insecure_test_mode: true`.",
    )
    insecure_test_mode: bool = Field(
        default=False,
        description="Allow the test-only authenticators (`shared-password`, `dummy`); the deploy's output and "
        "the hub's log say so loudly. Never on a hub that real people use.",
    )
    allowed_users: list[Username] = Field(
        default_factory=list,
        description="Users who may log in. With `ldap` and `oauth` an allow rule is required: this, "
        "`allowed_groups`, or `allow_all`. Not with `native`, where an admin's approval is the allow rule (listed "
        "names would skip it).",
    )
    allowed_groups: list[AllowedGroup] = Field(
        default_factory=list,
        description="Groups of the identity provider whose members may log in: LDAP group DNs, the OIDC "
        "provider's `oauth_groups_claim` values, GitHub organisations (`org` or `org:team`), GitLab groups, "
        "Azure AD group ids.",
    )
    allow_all: bool = Field(
        default=False,
        description="Let everyone whom `ldap` or `oauth` authenticates log in. Chosen on purpose, never by "
        "default. (With `native` an admin's approval at `/hub/authorize` is the allow rule.)",
    )
    sudo_groups: list[GroupName] = Field(
        default_factory=list,
        description="Hub groups whose members get passwordless `sudo` inside their own container. Nobody else "
        "does, and root has no password anywhere.",
    )
    ops_token: bool = Field(
        default=False,
        description="Give monitoring scripts an API token of their own (`<install_dir>/secrets/ops_api_token`, the "
        "hub service `jupyterhub-gpu-ops`), which may read the hub, its users and servers and the GPU table, and "
        "change nothing.",
    )
    metrics_token: bool = Field(
        default=False,
        description="Give a Prometheus scraper a token of its own (`<install_dir>/secrets/metrics_api_token`, the "
        "hub service `jupyterhub-gpu-metrics`) that may read `/hub/metrics` and nothing else.",
    )


class NativeSettings(Concern):
    """`authenticator: native`: accounts that live in the hub."""

    title: ClassVar[str] = "Native accounts"

    @classmethod
    def applies(cls, settings) -> bool:
        return settings.authenticator == 'native'

    open_signup: bool = Field(
        default=False,
        description="`native`: let new users sign up and log in without an admin's approval.",
        json_schema_extra=trait("NativeAuthenticator.open_signup"),
    )
    native_minimum_password_length: int = Field(
        default=12, ge=8, le=128, description="`native`: shortest password accepted at sign-up and change.",
        json_schema_extra=trait("NativeAuthenticator.minimum_password_length"),
    )
    native_check_common_password: bool = Field(
        default=True, description="`native`: refuse the 10,000 most common passwords.",
        json_schema_extra=trait("NativeAuthenticator.check_common_password"),
    )
    native_allowed_failed_logins: int = Field(
        default=5,
        ge=0,
        le=100,
        description="`native`: failed logins for one name from one address before each further try from there "
        "waits, 1 s after the next failure and twice as long after each one more, up to "
        "`native_seconds_before_next_try`; the right password always gets in once the wait is over. The address is "
        "the client's own (through the proxy, the one it saw), never a header the client sent. 0 never throttles.",
        json_schema_extra=trait("NativeAuthenticator.allowed_failed_logins"),
    )
    native_seconds_before_next_try: int = Field(
        default=600, ge=1, le=86400,
        description="`native`: the longest wait between tries for one name from one address after failed logins.",
        json_schema_extra=trait("NativeAuthenticator.seconds_before_next_try"),
    )
    native_failed_logins_per_hour: int = Field(
        default=60, ge=0, le=100000,
        description="`native`: failed logins one name may have in an hour from all addresses together; past that, "
        "addresses it never logged in from wait until the hour's count falls below it (at most an hour), while "
        "those it logged in from in the last 30 days do not. 0: no such ceiling.",
        json_schema_extra=trait("DeployedNativeAuthenticator.failed_logins_per_hour"),
    )


class LdapSettings(Concern):
    """`authenticator: ldap`: a directory."""

    title: ClassVar[str] = "LDAP"

    @classmethod
    def applies(cls, settings) -> bool:
        return settings.authenticator == 'ldap'

    ldap_server_address: LdapHost | None = Field(
        default=None, description="`ldap`: the directory server's DNS name or IP address.",
        json_schema_extra=trait("LDAPAuthenticator.server_address"),
    )
    ldap_server_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="`ldap`: its port. Empty: 636 with `ldap_tls: on_connect`, else 389.",
        json_schema_extra=trait("LDAPAuthenticator.server_port"),
    )
    ldap_tls: Literal["on_connect", "before_bind", "insecure"] = Field(
        default="on_connect",
        description="`ldap`: TLS from the start (`on_connect`, ldaps), STARTTLS before sending the password "
        "(`before_bind`), or none (`insecure`: passwords cross the network in the clear).",
        json_schema_extra=trait("LDAPAuthenticator.tls_strategy"),
    )
    ldap_ca_file: Path | None = Field(
        default=None,
        description="`ldap`: PEM CA certificate(s) on the controller that sign the server's certificate. "
        "Empty: the CAs the hub image trusts.",
    )
    ldap_bind_dn_template: list[LdapTemplate] = Field(
        default_factory=list,
        description="`ldap`: DNs to bind as, with `{username}` for the login name, like "
        "`uid={username},ou=people,dc=example,dc=org`. Either this or `ldap_user_search_base`.",
        json_schema_extra=trait("LDAPAuthenticator.bind_dn_template"),
    )
    ldap_user_search_base: LdapDn | None = Field(
        default=None,
        description="`ldap`: where to look users up by `ldap_user_attribute` (with `ldap_search_user`) when "
        "their DN cannot be made from a template.",
        json_schema_extra=trait("LDAPAuthenticator.user_search_base"),
    )
    ldap_user_attribute: str = Field(
        default="uid",
        pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$",
        description="`ldap`: the attribute that holds the login name.",
        json_schema_extra=trait("LDAPAuthenticator.user_attribute"),
    )
    ldap_valid_username_regex: Regex | None = Field(
        default=None,
        description="`ldap`: a regular expression every login name must match before the directory is asked, like "
        "`^[a-z][a-z0-9]{2,15}$`. Empty: ldapauthenticator's own (`^[a-z][.a-z0-9_-]*$`).",
        json_schema_extra=trait("LDAPAuthenticator.valid_username_regex"),
    )
    ldap_search_user: LdapDn | None = Field(
        default=None, description="`ldap`: DN the hub binds as to look users up.",
        json_schema_extra=trait("LDAPAuthenticator.lookup_dn_search_user"),
    )
    ldap_search_password_file: Path | None = Field(
        default=None,
        description="`ldap`: file on the controller with `ldap_search_user`'s password; kept 0600 on the host.",
    )


class OAuthSettings(Concern):
    """`authenticator: oauth`: an OpenID Connect or OAuth provider."""

    title: ClassVar[str] = "OAuth and OpenID Connect"

    @classmethod
    def applies(cls, settings) -> bool:
        return settings.authenticator == 'oauth'

    oauth_provider: Literal["generic", "github", "gitlab", "azuread"] = Field(
        default="generic",
        description="`oauth`: `generic` (any OpenID Connect provider: Keycloak, Authentik, Okta, ...), "
        "`github`, `gitlab` or `azuread` (Microsoft Entra ID).",
    )
    oauth_client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._~:@/+-]{1,256}$",
        description="`oauth`: the client id the provider gave the hub.",
        json_schema_extra=trait("OAuthenticator.client_id"),
    )
    oauth_client_secret_file: Path | None = Field(
        default=None,
        description="`oauth`: file on the controller holding the client secret; kept 0600 on the host, never printed.",
    )
    oauth_client_secret_env: EnvName | None = Field(
        default=None,
        description="`oauth`: or the environment variable on the controller that holds it.",
    )
    oauth_issuer_url: HttpUrl | None = Field(
        default=None,
        description="`oauth` `generic`: the OpenID issuer; the deploy reads its "
        "`/.well-known/openid-configuration` on the controller for the three endpoints below.",
    )
    oauth_authorize_url: HttpUrl | None = Field(
        default=None, description="`oauth` `generic`: authorization endpoint (instead of `oauth_issuer_url`)."
    )
    oauth_token_url: HttpUrl | None = Field(
        default=None, description="`oauth` `generic`: token endpoint (instead of `oauth_issuer_url`)."
    )
    oauth_userdata_url: HttpUrl | None = Field(
        default=None, description="`oauth` `generic`: userinfo endpoint (instead of `oauth_issuer_url`)."
    )
    oauth_scopes: list[OAuthScope] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="`oauth` `generic`: scopes to ask for.",
    )
    oauth_username_claim: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="`oauth` `generic` and `azuread`: the claim that becomes the hub user name; it must be unique and "
        "never handed to someone else. Empty: `preferred_username` for `generic`; `oid` for `azuread` (the "
        "user's object id: oauthenticator's default, the display name `name`, is not unique). `github` uses the "
        "login, `gitlab` the username, both unique.",
    )
    oauth_groups_claim: str = Field(
        default="groups",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="`oauth` `generic`: the claim that lists a user's groups, for `allowed_groups`.",
    )
    oauth_callback_url: HttpUrl | None = Field(
        default=None,
        description="`oauth`: the redirect URL registered with the provider. Empty: "
        "`https://<first hub name>[:https_port]/hub/oauth_callback`.",
    )
    oauth_azuread_tenant_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.-]{1,128}$",
        description="`oauth` `azuread`: the directory (tenant) id.",
        json_schema_extra=trait("AzureAdOAuthenticator.tenant_id"),
    )
    oauth_gitlab_url: HttpUrl | None = Field(
        default=None, description="`oauth` `gitlab`: a self-hosted GitLab's URL. Empty: gitlab.com.",
        json_schema_extra=trait("GitLabOAuthenticator.gitlab_url"),
    )
