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

# Run inside a user container: log in at the hub's login form straight on the hub's port (as any container on the
# network can), with extra headers; print the answer's status, Location and page as JSON. The _xsrf cookie is sent by
# hand: the hub marks it Secure, and this is plain HTTP.
HUB_LOGIN = """
import http.client, json, re, sys, urllib.parse
host, port, name, password, headers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
connection = http.client.HTTPConnection(host, port, timeout=30)
connection.request("GET", "/hub/login", headers=headers)  # the hub binds the form's _xsrf to the address it sees
page = connection.getresponse()
page.read()
xsrf = re.search(r"_xsrf=([^;]+)", page.getheader("Set-Cookie") or "").group(1)
form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf})
connection.request("POST", "/hub/login", form, {"Content-Type": "application/x-www-form-urlencoded",
                                                 "Cookie": f"_xsrf={xsrf}", **headers})
answer = connection.getresponse()
print(json.dumps({"status": answer.status, "location": answer.getheader("Location") or "",
                  "text": answer.read().decode()}))
"""
