"""Run a built image without an engine and check it: `python -m images.ci.run_image KIND IMAGE`
(KIND: bot, bot-webrtc or dispatcher).

The image is mounted (`buildah from` + `buildah mount`), then its ENTRYPOINT runs as the image's
USER, with only the image's ENV and WORKDIR, as PID 1 of fresh pid/net/mount/uts/ipc namespaces
(`unshare` + `chroot`). The network namespace has only a loopback interface: nothing can reach
anything. Checks (each failure is one line on stderr and exit 1):
- bot: the host's `--check` with **no arguments** exits 0 (the project's BOT_FILE, VAD loaded); the
  host holds its bytecode and the dataclass code cache (bot/dataclass_code.py), the project its
  bytecode, and no .venv/.git/.env came along with it; as the bot's uid, a file by a relative name
  is written in the project's folder (its working directory) while its code is not changed.
- dispatcher: ECS and S3 clients build from the (pruned) botocore models; GET /healthz answers 200
  inside the namespace; PID 1 is tini and every process runs as the image's non-root uid; after
  SIGTERM the entrypoint exits 0.
- all: USER is numeric and not 0; ENTRYPOINT starts with tini; the runtime closure (/opt/venv's
  site-packages) is within its budget (images/budgets.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from images.budgets import closure_budget_mb, installed_mb, judge

TIMEOUT = 120.0  # seconds for any one step (2 shared cores, cold page cache)
HOST_DIR = "opt/voicefleet"  # the host's code in the bot image (its venv's voicefleet.pth names it)


@dataclass(frozen=True)
class Image:
    name: str
    user: str
    env: list[str]
    workdir: str
    entrypoint: list[str]

    @classmethod
    def inspect(cls, name: str) -> Image:
        raw = subprocess.run(["buildah", "inspect", "--type", "image", name], check=True, capture_output=True,
                             text=True, timeout=TIMEOUT).stdout
        config = json.loads(raw)["OCIv1"]["config"]
        return cls(name=name, user=config.get("User", ""), env=list(config.get("Env") or []),
                   workdir=config.get("WorkingDir") or "/", entrypoint=list(config.get("Entrypoint") or []))


class Mounted:
    """`buildah from` + `buildah mount`; removed on exit whatever happened."""

    def __init__(self, image: str) -> None:
        self.image = image

    def __enter__(self) -> Path:
        self.container = subprocess.run(["buildah", "from", "--pull=never", self.image], check=True,
                                        capture_output=True, text=True, timeout=TIMEOUT).stdout.strip()
        root = subprocess.run(["buildah", "mount", self.container], check=True, capture_output=True, text=True,
                              timeout=TIMEOUT).stdout.strip()
        return Path(root)

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["buildah", "rm", self.container], capture_output=True, timeout=TIMEOUT)


def command(root: Path, image: Image, args: list[str]) -> list[str]:
    """unshare → chroot as USER → env -i (image ENV only) → cd WORKDIR → ENTRYPOINT + args."""
    return ["unshare", "--fork", "--pid", "--net", "--mount", "--uts", "--ipc", f"--mount-proc={root}/proc",
            "chroot", f"--userspec={image.user}", str(root),
            "/usr/bin/env", "-i", *image.env, "HOME=/tmp", "/bin/sh", "-c", 'cd "$0" && exec "$@"',
            image.workdir, *image.entrypoint, *args]


def check_static(image: Image, root: Path) -> list[str]:
    problems = []
    uid = image.user.split(":")[0]
    if not uid.isdigit() or uid == "0":
        problems.append(f"{image.name}: USER {image.user!r} is not a numeric non-root uid")
    if not image.entrypoint or Path(image.entrypoint[0]).name != "tini":
        problems.append(f"{image.name}: ENTRYPOINT {image.entrypoint} does not start with tini")
    elif not (root / image.entrypoint[0].lstrip("/")).exists():
        problems.append(f"{image.name}: {image.entrypoint[0]} is not in the image")
    return problems


def check_bot(image: Image, root: Path) -> list[str]:
    """`--check` and nothing else: the default transport must be one this image has, and the bot it
    loads is the project's (BOT_FILE), offline."""
    started = time.monotonic()
    result = subprocess.run(command(root, image, ["--check"]), capture_output=True, text=True, timeout=TIMEOUT)
    print(f"bot --check: exit {result.returncode} in {time.monotonic() - started:.2f} s")
    if result.returncode != 0:
        return [f"bot --check exited {result.returncode}: {result.stderr.strip()[-2000:]}"]
    bot_file = _env(image, "BOT_FILE")
    if f'"bot": "{bot_file}"' not in result.stdout:
        return [f"bot --check did not load the image's BOT_FILE {bot_file!r}: {result.stdout.strip()[-1000:]}"]
    return []


def _env(image: Image, name: str) -> str:
    return next((entry.split("=", 1)[1] for entry in image.env if entry.startswith(name + "=")), "")


def check_bot_bytecode(image: Image, root: Path) -> list[str]:
    """The code arrives compiled: voicefleet's host (in /opt/voicefleet) with its dataclass code cache,
    and the user's project (BOT_FILE's folder); the runtime may not write bytecode, so without them
    every cold start compiles. And nothing of a developer's tree came along with the project."""
    host = root / HOST_DIR / "bot" / "__pycache__"
    bot_file = Path(_env(image, "BOT_FILE") or "/app/bot.py")
    project = root / bot_file.parent.relative_to("/")
    wanted = {host: {"host's .pyc files": "app.*.pyc", "dataclass code cache": "dataclass-code.*.marshal"},
              project / "__pycache__": {"project's bot.py bytecode": f"{bot_file.stem}.*.pyc"}}
    problems = [f"{image.name}: no {what} in {folder}" for folder, patterns in wanted.items()
                for what, pattern in patterns.items() if not any(folder.glob(pattern))]
    if not (project / bot_file.name).is_file():
        problems.append(f"{image.name}: BOT_FILE {bot_file} is not in the image")
    uid, gid = (int(part) for part in image.user.split(":"))
    host_folder = host.parent.parent
    info = host_folder.stat()
    if info.st_uid == uid or info.st_mode & 0o002:
        problems.append(f"{image.name}: {host_folder.relative_to(root)} is writable by the bot's uid {uid}")
    problems += [f"{image.name}: {problem}" for problem in project_folder_problems(project, gid)]
    if any((root / "opt" / "models").rglob("uv")):
        problems.append(f"{image.name}: a uv cache was baked into /opt/models")
    strays = [name for name in (".venv", ".git", ".env") if (project / name).exists()]
    if strays:
        problems.append(f"{image.name}: the project brought {strays} into the image")
    return problems


# The bot's folder (its working directory): root's, the bot's group, 1775. The bot creates files there
# (Pipecat's examples write recordings next to themselves by a relative name); the sticky bit keeps it
# from deleting or replacing root's files, which no group or other may write.
PROJECT_FOLDER_MODE = 0o1775
# Run as the bot's uid in its working directory: prints what it was refused, of what it must be.
WRITE_PROBE = """
import os
name = os.path.basename(os.environ.get("BOT_FILE", "bot.py"))
with open("voicefleet-write-check.txt", "w") as written:
    written.write("a file next to the bot, by a relative name")
refused = []
for what, act in (("append to", lambda: open(name, "a")),
                  ("replace", lambda: os.replace("voicefleet-write-check.txt", name)),
                  ("delete", lambda: os.remove(name))):
    try:
        act()
    except PermissionError:
        refused.append(what)
os.remove("voicefleet-write-check.txt")
print(",".join(refused))
"""
WRITE_PROBE_REFUSES = "append to,replace,delete"


def project_folder_problems(folder: Path, gid: int) -> list[str]:
    """The modes that let the bot write next to itself and never over its code."""
    info = folder.stat()
    problems = []
    if (info.st_uid, info.st_gid, info.st_mode & 0o7777) != (0, gid, PROJECT_FOLDER_MODE):
        problems.append(f"{folder.name} is {info.st_uid}:{info.st_gid} {info.st_mode & 0o7777:o}, not "
                        f"0:{gid} {PROJECT_FOLDER_MODE:o} (the bot's files next to its code, never over it)")
    writable = [path.name for path in folder.iterdir() if path.is_file() and (
        path.stat().st_uid != 0 or path.stat().st_mode & 0o022)]
    if writable:
        problems.append(f"{folder.name} has files the bot could change: {', '.join(sorted(writable))}")
    return problems


def check_bot_writes_next_to_itself(image: Image, root: Path) -> list[str]:
    """As the bot's uid, in its working directory: a new file by a relative name is written; its
    code is neither appended to, replaced nor deleted."""
    probe = Image(image.name, image.user, image.env, image.workdir, ["python", "-c", WRITE_PROBE])
    result = subprocess.run(command(root, probe, []), capture_output=True, text=True, timeout=TIMEOUT)
    print(f"bot writes next to itself: exit {result.returncode}, refused: {result.stdout.strip()}")
    if result.returncode != 0 or result.stdout.strip() != WRITE_PROBE_REFUSES:
        return [f"{image.name}: the bot's uid in {image.workdir}: {result.stdout.strip()!r} refused, not "
                f"{WRITE_PROBE_REFUSES!r}: {result.stderr.strip()[-1500:]}"]
    return []


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Uid in /proc/{pid}/status")


def _in_netns(pid: int, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--target={pid}", "--net", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=TIMEOUT)


def check_dispatcher_aws_clients(image: Image, root: Path) -> list[str]:
    """The image keeps only the botocore models the dispatcher calls (ECS machines, S3 for kept calls):
    build those clients, offline."""
    # botocore, as the dispatcher has it: the image carries no boto3.
    code = ("import botocore.session; session = botocore.session.get_session(); "
            "print(' '.join(session.create_client(name, region_name='us-east-1').meta.service_model.service_name "
            "for name in ('ecs', 's3')))")
    probe = Image(image.name, image.user, image.env, image.workdir, ["python", "-c", code])
    result = subprocess.run(command(root, probe, []), capture_output=True, text=True, timeout=TIMEOUT)
    print(f"dispatcher AWS clients: exit {result.returncode} {result.stdout.strip()}")
    if result.returncode != 0 or result.stdout.strip() != "ecs s3":
        return [f"dispatcher image cannot build its ECS and S3 clients: {result.stderr.strip()[-1500:]}"]
    return []


def check_dispatcher(image: Image, root: Path) -> list[str]:
    env_image = Image(image.name, image.user, [*image.env, "DISPATCHER_API_KEYS=ci-check-not-a-secret"],
                      image.workdir, image.entrypoint)
    process = subprocess.Popen(command(root, env_image, []), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    problems: list[str] = []
    try:
        deadline = time.monotonic() + TIMEOUT
        # unshare (this child) forks PID 1 of the namespace: chroot, which execs env, sh, then tini.
        pid1 = 0
        while time.monotonic() < deadline and not pid1:
            kids = _children(process.pid)
            pid1 = kids[0] if kids else 0
            time.sleep(0.05)
        subprocess.run(["nsenter", f"--target={pid1}", "--net", "ip", "link", "set", "lo", "up"], check=True,
                       timeout=TIMEOUT)
        probe = ("import urllib.request,sys\n"
                 "r=urllib.request.urlopen('http://127.0.0.1:8080/healthz',timeout=2)\n"
                 "sys.stdout.write(str(r.status))")
        started = time.monotonic()
        status = ""
        while time.monotonic() < deadline and process.poll() is None:
            result = _in_netns(pid1, probe)
            if result.returncode == 0:
                status = result.stdout
                break
            time.sleep(0.2)
        print(f"dispatcher /healthz: {status or 'no answer'} after {time.monotonic() - started:.2f} s")
        if status != "200":
            problems.append(f"dispatcher /healthz did not answer 200 (got {status or 'nothing'}; "
                            f"exit code {process.poll()})")
            return problems
        exe = os.readlink(f"/proc/{pid1}/exe")
        if Path(exe).name != "tini":
            problems.append(f"dispatcher PID 1 is {exe}, not tini")
        uid = int(image.user.split(":")[0])
        tree = [pid1, *_children(pid1)]
        wrong = {p: _uid(p) for p in tree if _uid(p) != uid}
        if wrong:
            problems.append(f"dispatcher processes not running as uid {uid}: {wrong}")
        print(f"dispatcher PID 1: {Path(exe).name}, uids: {sorted({_uid(p) for p in tree})}")
        os.kill(pid1, signal.SIGTERM)
        code = process.wait(timeout=TIMEOUT)
        print(f"dispatcher after SIGTERM: exit {code}")
        if code != 0:
            problems.append(f"dispatcher exited {code} after SIGTERM (graceful shutdown must exit 0)")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=TIMEOUT)
        output = process.stdout.read() if process.stdout else ""
        if problems:
            print(output[-3000:], file=sys.stderr)
    return problems


def check_closure_budget(kind: str, root: Path, budget_mb: float | None) -> list[str]:
    """The runtime closure as built, against the same budget the rebuilt closures are held to (or
    the project's own, raised knowingly, by the rule the plan applies: images/budgets.py)."""
    site_packages = next((root / "opt" / "venv" / "lib").glob("python3.*/site-packages"))
    size = installed_mb(site_packages)
    held = f"budget {closure_budget_mb(kind, budget_mb):.0f} MB" if budget_mb or not kind.startswith("bot") \
        else "no budget set"
    print(f"{kind} closure: {size:.1f} MB ({held})")
    judgement = judge(kind, size, budget_mb)
    if judgement.refused and judgement.note is not None:
        return [judgement.note]
    if judgement.note is not None:
        print(f"note: {judgement.note}")
    return []


def main(argv: list[str]) -> int:
    # kind: a key of images/budgets.py (bot, bot-webrtc, dispatcher); a bot project's own budget in MB
    kind, name, *own = argv
    budget_mb = float(own[0]) if own and own[0] else None
    role = kind.split("-")[0]
    image = Image.inspect(name)
    with Mounted(name) as root:
        problems = check_static(image, root) + check_closure_budget(kind, root, budget_mb)
        if role == "bot":
            problems += check_bot_bytecode(image, root) + check_bot_writes_next_to_itself(image, root)
            problems += check_bot(image, root)
        else:
            problems += check_dispatcher_aws_clients(image, root) + check_dispatcher(image, root)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
