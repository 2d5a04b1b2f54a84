"""The deploy's own library: the model every role reads (settings, facts, target) and the helpers the roles
share (missing Debian packages, the closing lines). The spawner package (spawner/, installed into the
controller's .venv by bin/setup-controller) lends it the GPU ids' grammar and the swarm's labels."""
