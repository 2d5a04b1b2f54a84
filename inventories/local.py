"""This very machine, deployed to without SSH (run pyinfra as root on it, e.g. inside WSL2)."""

local = [
    (
        "@local",
        {
            # Settings: see the settings reference in docs/. The defaults suit a WSL2 desktop or a LAN host.
        },
    )
]
