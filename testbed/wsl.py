"""A stand-in for WSL2 and its Windows, for target hosts of the test bed (in the spirit of the NVIDIA one).

The target is a Debian host in which:
- WSL's marks are set as WSL sets them: /run/WSL exists, WSL_DISTRO_NAME is in the environment, the driver's
  nvidia-smi is at /usr/lib/wsl/lib (where WSL exposes the Windows driver's);
- Windows' programs that the deploy calls through WSL's interop are stand-ins at their Windows paths under
  /mnt/c: cmd.exe and whoami.exe answer as an elevated session of DESKTOP\\ann, schtasks.exe keeps a task
  registry, answers /Query as Windows does (an XML export) and records every call;
- its init is a stand-in for WSL's: when the "distribution" starts (the container starts), it runs the
  [boot] command of /etc/wsl.conf as root, as WSL does, then the SSH server the test bed reaches it by.
Nothing in the code under test knows the difference: it reads the same files and runs the same programs.
"""

from __future__ import annotations

import json

DISTRIBUTION = "Ubuntu-24.04"
CALLS = "/mnt/c/testbed/calls.jsonl"
TASKS = "/mnt/c/testbed/tasks.json"
# What the distribution's wsl.conf held before the deploy: another section and a boot command of its own.
WSL_CONF = ("# the distribution's own settings\n[user]\ndefault = ann\n\n"
            "[boot]\ncommand = echo booted >> /var/log/testbed-boot.log\n")

_RECORD = f'''
import json, sys, time
with open({CALLS!r}, "a") as log:
    log.write(json.dumps({{"program": sys.argv[0].rsplit("/", 1)[-1], "args": sys.argv[1:], "time": time.time()}}) + "\\n")
'''  # noqa: E501 (a script's own lines)

CMD_EXE = f'''#!/usr/bin/python3
# Test bed stand-in for cmd.exe: /c "echo ..." with %VARIABLE% expansion, as the deploy uses it.
import sys
{_RECORD}
variables = {{"USERDOMAIN": "DESKTOP", "USERNAME": "ann", "USERPROFILE": "C:\\\\Users\\\\ann"}}
args = sys.argv[1:]
line = args[args.index("/c") + 1] if "/c" in args else ""
if not line.startswith("echo "):
    sys.exit("cmd.exe stand-in: only echo is stood in for")
text = line[5:].replace("^|", "|")
for name, value in variables.items():
    text = text.replace(f"%{{name}}%", value)
sys.stdout.write(text + "\\r\\n")
'''

WHOAMI_EXE = f'''#!/usr/bin/python3
# Test bed stand-in for whoami.exe /groups in an elevated session (High Mandatory Level).
{_RECORD}
print("Mandatory Label\\\\High Mandatory Level  Label  S-1-16-12288\\r")
'''

SCHTASKS_EXE = f'''#!/usr/bin/python3
# Test bed stand-in for schtasks.exe: /Create and /Query /XML ONE, with a registry of tasks.
import json, os, sys
from xml.sax.saxutils import escape
{_RECORD}
args = sys.argv[1:]
tasks = json.load(open({TASKS!r})) if os.path.exists({TASKS!r}) else {{}}

def option(name):
    return args[args.index(name) + 1] if name in args else None

if args[:1] == ["/Create"]:
    name = option("/TN")
    if name in tasks and "/F" not in args:
        sys.exit("ERROR: Cannot create a file when that file already exists.")
    command, _, arguments = option("/TR").partition(" ")
    tasks[name] = {{"command": command, "arguments": arguments, "schedule": option("/SC"), "user": option("/RU"),
                   "logon_type": "S4U" if "/NP" in args else "InteractiveToken", "run_level": option("/RL")}}
    json.dump(tasks, open({TASKS!r}, "w"))
    print(f'SUCCESS: The scheduled task "{{name}}" has successfully been created.')
elif args[:1] == ["/Query"]:
    task = tasks.get(option("/TN"))
    if task is None:
        sys.exit("ERROR: The system cannot find the file specified.")
    trigger = "<BootTrigger><Enabled>true</Enabled></BootTrigger>" if task["schedule"] == "ONSTART" else ""
    print(f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <Triggers>{{trigger}}</Triggers>
  <Principals><Principal id="Author"><UserId>{{escape(task["user"])}}</UserId>
    <LogonType>{{task["logon_type"]}}</LogonType><RunLevel>HighestAvailable</RunLevel></Principal></Principals>
  <Actions Context="Author"><Exec><Command>{{escape(task["command"])}}</Command>
    <Arguments>{{escape(task["arguments"])}}</Arguments></Exec></Actions>
</Task>""".replace("\\n", "\\r\\n"))
else:
    sys.exit(f"schtasks.exe stand-in: {{args}} is not stood in for")
'''

WSL_EXE = f'''#!/usr/bin/python3
# Test bed stand-in for wsl.exe: records the call.
{_RECORD}
'''

WSLPATH = f'''#!/bin/sh
# Test bed stand-in for WSL's wslpath: -u C:\\Users\\ann -> /mnt/c/Users/ann; -w / -> the distribution's root as
# Windows sees it, \\\\wsl.localhost\\{DISTRIBUTION}\\.
if [ "$1" = -w ] && [ "$2" = / ]; then printf '%s\\n' '\\\\wsl.localhost\\{DISTRIBUTION}\\'; exit 0; fi
[ "$1" = -u ] && shift
printf '%s\\n' "$1" | sed -e 's|^\\([A-Za-z]\\):|/mnt/\\L\\1|' -e 's|\\\\|/|g'
'''

INIT = '''#!/bin/sh
# Test bed stand-in for WSL's init: each start of the distribution runs /etc/wsl.conf's [boot] command as
# root, as WSL does; then the SSH server by which the test bed reaches this host.
mkdir -p /run/WSL /run/sshd
command=$(python3 -c 'import configparser; c = configparser.ConfigParser(interpolation=None); c.read("/etc/wsl.conf"); print(c.get("boot", "command", fallback=""))')
if [ -n "$command" ]; then
  sh -c "$command" >>/var/log/testbed-wsl-boot.log 2>&1
fi
exec /usr/sbin/sshd -D -e
'''  # noqa: E501 (a script's own lines)

DOCKERFILE_ADDITIONS = f"""RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /usr/lib/wsl/lib /mnt/c/Windows/System32 /mnt/c/testbed /mnt/c/Users/ann \\
 && printf 'WSL_DISTRO_NAME={DISTRIBUTION}\\n' >> /etc/environment
COPY nvidia-smi /usr/lib/wsl/lib/nvidia-smi
COPY cmd.exe whoami.exe schtasks.exe wsl.exe /mnt/c/Windows/System32/
COPY wslpath /usr/bin/wslpath
COPY wsl.conf /etc/wsl.conf
COPY testbed-wsl-init /usr/local/sbin/testbed-wsl-init
CMD ["/usr/local/sbin/testbed-wsl-init"]
"""

# WSL2 with systemd (`[boot] systemd=true`, as Ubuntu's distribution ships): WSL's init starts systemd as PID 1,
# which makes /run/WSL at each boot here; the rest is as above.
WSL_SYSTEMD_CONF = "[boot]\nsystemd=true\n"
SYSTEMD_DOCKERFILE_ADDITIONS = f"""RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /usr/lib/wsl/lib /mnt/c/Windows/System32 /mnt/c/testbed /mnt/c/Users/ann \\
 && printf 'WSL_DISTRO_NAME={DISTRIBUTION}\\n' >> /etc/environment \\
 && printf 'd /run/WSL 0755 root root -\\n' > /etc/tmpfiles.d/testbed-wsl.conf
COPY nvidia-smi /usr/lib/wsl/lib/nvidia-smi
COPY cmd.exe whoami.exe schtasks.exe wsl.exe /mnt/c/Windows/System32/
COPY wslpath /usr/bin/wslpath
COPY wsl.conf /etc/wsl.conf
"""

FILES = {"cmd.exe": CMD_EXE, "whoami.exe": WHOAMI_EXE, "schtasks.exe": SCHTASKS_EXE, "wsl.exe": WSL_EXE,
         "wslpath": WSLPATH, "wsl.conf": WSL_CONF, "testbed-wsl-init": INIT}
SYSTEMD_FILES = {**{name: text for name, text in FILES.items() if name != "testbed-wsl-init"},
                 "wsl.conf": WSL_SYSTEMD_CONF}


def calls(read) -> list[dict]:
    """The recorded calls of Windows' stand-in programs; ``read(path)`` reads a file on the target."""
    return [json.loads(line) for line in read(CALLS).decode().splitlines() if line]
