"""The hub's accounts on a jupyterhub-gpu host, shipped in the hub image beside the spawner: the native
authenticator whose admin accounts the deploy makes (``native``), and the refusal of the service accounts'
names whatever the identity provider says (``reserved``)."""
