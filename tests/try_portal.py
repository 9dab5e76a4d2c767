"""Plays the README's "Try the portal on your machine" (run by tests/test_readme_portal.py inside its
own network namespace, so the commands' fixed ports 50051, 8080 and 9464 are free and nobody else's):
the commands as written in a bash each, in an empty folder, then what the README tells a person to
do: open the portal, type 081-234-5678, run the last command to read the code, type it in. Prints
"signed in: <balance>" and exits 0 when the overview shows; stops every process it started (each
command's process group) on the way out. Usage: python3 -m tests.try_portal README.md FOLDER"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

SECTION = "## Try the portal on your machine"
PORTAL = "http://127.0.0.1:8080"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
COMMAND_TIMEOUT_S = 60
CODE_WAIT_S = 30
STOP_WAIT_S = 15


def commands(readme: str) -> list[str]:
    section = readme[readme.index(SECTION) :]
    block = re.search(r"^```sh\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert block, "no ```sh block under " + SECTION
    return block.group(1).strip().splitlines()


def run(command: str, folder: Path, groups: list[int]) -> str:
    """One command line in bash, as a person types it; what it printed. Its background jobs stay in
    its process group, which is stopped at the end."""
    process = subprocess.Popen(
        ["bash", "-c", command], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    groups.append(process.pid)
    output, _ = process.communicate(timeout=COMMAND_TIMEOUT_S)
    text = output.decode()
    assert process.returncode == 0, f"{command!r} exited {process.returncode}: {text}"
    return text


def sign_in(lines: list[str], folder: Path, groups: list[int]) -> str:
    with httpx.Client(base_url=PORTAL, timeout=20) as browser:
        page = browser.get("/sign-in")
        sent = browser.post("/sign-in", data={"phone": "081-234-5678", "csrf": CSRF.findall(page.text)[0]})
        assert sent.status_code == 200, sent.text
        deadline, codes = time.monotonic() + CODE_WAIT_S, []
        while not codes:
            assert time.monotonic() < deadline, "no code in notify.log: " + (folder / "notify.log").read_text()
            time.sleep(0.2)
            shown = subprocess.run(["bash", "-c", lines[-1]], cwd=folder, capture_output=True, text=True)
            codes = re.findall(r"console notice .* to 66812345678 \(sms\): .*\b(\d{6})\b", shown.stdout)
        form = {"phone": "66812345678", "code": codes[-1], "csrf": CSRF.findall(sent.text)[0]}
        done = browser.post("/sign-in/code", data=form)
        assert done.status_code == 303, done.text
        overview = browser.get("/")
        assert overview.status_code == 200 and 'id="balance"' in overview.text, overview.text
        return re.findall(r'id="balance">([^<]+)<', overview.text)[0]


def main() -> None:
    readme, folder = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
    if os.geteuid() == 0:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    lines = commands(readme)
    assert len(lines) <= 4, f"at most four commands, not {len(lines)}"
    groups: list[int] = []
    try:
        for line in lines[:-1]:
            run(line, folder, groups)
        print("signed in:", sign_in(lines, folder, groups))
    finally:
        stop(groups)


def stop(groups: list[int]) -> None:
    """SIGTERM to each command's process group, then waits (bounded) until they are gone: serve
    stops its embedded Redis on the way out."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for group in groups:
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


if __name__ == "__main__":
    main()
