"""A real directory for the LDAP logins: Debian's OpenLDAP slapd, run by the test bed over ldaps.

It listens where the targets' hubs reach it (the bridge gateway), with a certificate from a throwaway
CA that the deploy is given as ``ldap_ca_file``. The directory holds people under ou=people and a
group cn=hub-users (groupOfNames) whose members may log in.
"""

from __future__ import annotations

import shutil
import subprocess

from testbed import STATE
from testbed.acme import throwaway_ca
from testbed.targets import wait_for_port

SUFFIX = "dc=testbed,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
HUB_GROUP = f"cn=hub-users,ou=groups,{SUFFIX}"
PORT = 6360


class Directory:
    def __init__(self, address: str, people: dict[str, str], hub_users: list[str]):
        """``people``: uid -> password; ``hub_users``: the uids in cn=hub-users."""
        self.root = STATE / "ldap"
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "db").mkdir(parents=True)
        self.ca_file, cert, key = throwaway_ca(self.root / "tls", "ldap", ips=[address])
        self.url = f"ldaps://{address}:{PORT}/"
        self.address = address
        config = self.root / "slapd.conf"
        config.write_text("\n".join([
            *(f"include /etc/ldap/schema/{schema}.schema" for schema in ("core", "cosine", "inetorgperson", "nis")),
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            f"pidfile {self.root / 'slapd.pid'}",
            f"TLSCACertificateFile {self.ca_file}",
            f"TLSCertificateFile {cert}",
            f"TLSCertificateKeyFile {key}",
            "database mdb",
            f'suffix "{SUFFIX}"',
            f'rootdn "cn=admin,{SUFFIX}"',
            f"directory {self.root / 'db'}",
            # People bind as themselves; reading the group needs a bound user.
            "access to attrs=userPassword by self write by anonymous auth by * none",
            "access to * by users read by * none",
        ]) + "\n")
        ldif = self.root / "data.ldif"
        ldif.write_text(_ldif(people, hub_users))
        subprocess.run(["slapadd", "-f", str(config), "-l", str(ldif)], check=True, capture_output=True)
        self.log = (self.root / "slapd.log").open("wb")
        # -d keeps slapd in the foreground, a child of the test run.
        self.process = subprocess.Popen(["slapd", "-f", str(config), "-h", self.url, "-d", "256"],
                                        stdout=self.log, stderr=self.log, start_new_session=True)
        wait_for_port(address, PORT, process=self.process)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()

    def inventory_data(self) -> dict:
        return {
            "authenticator": "ldap",
            "ldap_server_address": self.address,
            "ldap_server_port": PORT,
            "ldap_tls": "on_connect",
            "ldap_ca_file": str(self.ca_file),
            "ldap_bind_dn_template": [f"uid={{username}},{PEOPLE}"],
            "allowed_groups": [HUB_GROUP],
        }


def _ldif(people: dict[str, str], hub_users: list[str]) -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: test bed\ndc: testbed",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups",
    ]
    for uid, password in people.items():
        entries.append(f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
                       f"userPassword: {password}")
    members = "\n".join(f"member: uid={uid},{PEOPLE}" for uid in hub_users)
    entries.append(f"dn: {HUB_GROUP}\nobjectClass: groupOfNames\ncn: hub-users\n{members}")
    return "\n\n".join(entries) + "\n"
