"""What the isolation tests run inside a user container."""

# Run inside a user container: try one TCP connection, say how it went.
PROBE = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
if host == "gateway":
    for line in open("/proc/net/route").read().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            host = socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
try:
    socket.create_connection((host, port), timeout=3).close()
    print("open")
except socket.timeout:
    print("timeout")
except OSError as error:
    print(type(error).__name__)
"""
