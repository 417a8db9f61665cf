"""The images a Docker run needs, made on this machine: no registry is asked for anything.

- The **base image** (:func:`ensure_base`): a Python of the host's Debian release made from
  Debian packages only, ``debootstrap --variant=minbase`` with python3 and pip, imported with
  the Engine's image import. ``stressbed images base`` (``nox -s images``) makes it ahead of a
  run; a run makes it when it is missing. Another base (``--base-image python:3.11-slim``)
  must already be on the engine.
- The **agent and runner images** (:func:`ensure_image`) are built from this checkout's
  ``agent/Dockerfile`` and ``runner/Dockerfile`` with the base as their ``BASE`` argument.
  Builds need no network inside the container: the Python packages an image installs are
  downloaded on the host (``pip download``, the checkout's own pins, for the base's Python)
  into the build context, and the Dockerfiles install from there with ``--no-index``. Each
  image is tagged with a hash of everything that goes into it (the Dockerfile, the files it
  copies, the requirement files that pin its wheels, the base image's ID), so a second run
  finds it, downloads nothing and builds nothing.

Images are a cache: a run's teardown never removes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ...errors import ConfigError, ProvisionError
from ._engine import Registry

__all__ = [
    "BASE_REPOSITORY",
    "IMAGES",
    "Checkout",
    "ImageSpec",
    "base_tag",
    "ensure_base",
    "ensure_image",
    "find_checkout",
]

#: Where the base image made from Debian packages goes: ``stressbed-base:<codename>``.
BASE_REPOSITORY = "stressbed-base"
#: The Debian packages in it besides the minimal base: Python, pip (to install the wheels
#: given to it) and ``python`` as a name for python3 (the Dockerfiles call ``python``).
BASE_PACKAGES = ("python3", "python3-pip", "python-is-python3", "ca-certificates")
#: How long debootstrap may take (it downloads about 40 MB of packages).
DEBOOTSTRAP_TIMEOUT_S = 900.0
#: How long pip may take to fetch an image's wheels.
DOWNLOAD_TIMEOUT_S = 600.0
#: The labels every image stressbed makes carries.
LABEL_INPUTS = "stressbed.inputs"
LABEL_PYTHON = "stressbed.python"

Say = Callable[[str], None]


@dataclass(frozen=True)
class ImageSpec:
    """One image built from the checkout: its Dockerfile, what that copies, what pip
    installs in it (requirement files of the checkout, plus what a source install builds
    with)."""

    name: str  # the repository: stressbed-agent, stressbed-runner
    dockerfile: str
    copies: tuple[str, ...]  # files and directories of the checkout the Dockerfile copies
    requirements: str  # the requirements file it installs (inside ``copies``)
    builds_source: bool = False  # it pip-installs the checkout: needs the build backend


IMAGES = {
    "agent": ImageSpec(
        "stressbed-agent",
        "agent/Dockerfile",
        ("agent/Dockerfile", "agent/requirements.txt", "agent/stressbed_agent"),
        "agent/requirements.txt",
    ),
    "runner": ImageSpec(
        "stressbed-runner",
        "runner/Dockerfile",
        (
            "runner/Dockerfile",
            "runner/requirements.txt",
            "pyproject.toml",
            "README.md",
            "stressbed",
            "scenarios",
            "agent/stressbed_agent",
        ),
        "runner/requirements.txt",
        builds_source=True,
    ),
}


@dataclass(frozen=True)
class Checkout:
    """A stressbed source tree with the Dockerfiles."""

    root: Path

    def files(self, spec: ImageSpec) -> list[Path]:
        """Every file the image's build copies, sorted (caches and bytecode left out)."""
        found: list[Path] = []
        for part in spec.copies:
            path = self.root / part
            if path.is_dir():
                found += [
                    p
                    for p in path.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
                ]
            elif path.is_file():
                found.append(path)
            else:
                raise ConfigError(
                    f"the {spec.name} image",
                    f"{part} missing",
                    f"a stressbed checkout at {self.root}",
                )
        return sorted(found)

    def build_requires(self) -> list[str]:
        """The build backend pyproject.toml names (``hatchling>=1.24``)."""
        with (self.root / "pyproject.toml").open("rb") as f:
            return list(tomllib.load(f).get("build-system", {}).get("requires", []))


def find_checkout() -> Checkout:
    """The checkout the images are built from: ``$STRESSBED_SOURCE``, else the working
    directory or one above it, else the one this package was installed from (editable)."""
    here = Path(__file__).resolve().parents[3]
    explicit = os.environ.get("STRESSBED_SOURCE")
    candidates = [Path(explicit)] if explicit else [Path.cwd(), *Path.cwd().parents, here]
    for root in candidates:
        if all((root / f).is_file() for f in ("agent/Dockerfile", "runner/Dockerfile")):
            return Checkout(root)
    raise ConfigError(
        "STRESSBED_SOURCE" if explicit else "the images' Dockerfiles",
        explicit or f"not found from {Path.cwd()}",
        "a stressbed checkout (agent/Dockerfile, runner/Dockerfile): run from it or set "
        "STRESSBED_SOURCE",
    )


# -- the base image ---------------------------------------------------------------------


def _os_release() -> dict[str, str]:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v.strip().strip('"') for k, v in pairs}


def base_tag() -> str:
    """``stressbed-base:<this host's Debian codename>``."""
    codename = _os_release().get("VERSION_CODENAME") or "bookworm"
    return f"{BASE_REPOSITORY}:{codename}"


def _mirror() -> str:
    """The Debian mirror this host's apt uses (its first ``URIs:`` or ``deb`` line)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            found = re.match(r"\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if found and "security" not in found.group(1):
                return found.group(1)
    return "http://deb.debian.org/debian"


def ensure_base(client: Any, tag: str | None, say: Say) -> str:
    """The base image's ID: ``tag`` (another base, which must be on the engine), or the one
    made from Debian packages, made now if it is missing."""
    wanted = tag or base_tag()
    try:
        return str(client.images.get(wanted).id)
    except docker.errors.ImageNotFound:
        if tag is not None:
            raise ConfigError(
                "--base-image",
                tag,
                "an image on the engine (docker load it; no registry is asked), or none: "
                f"stressbed makes {base_tag()} from Debian packages",
            ) from None
    # One maker at a time on this machine: a run (or `stressbed images base`) that finds
    # another making it waits for that one, then finds the image.
    with _machine_lock("base"):
        try:
            return str(client.images.get(wanted).id)
        except docker.errors.ImageNotFound:
            make_base(client, wanted, say)
    return str(client.images.get(wanted).id)


@contextlib.contextmanager
def _machine_lock(name: str) -> Iterator[None]:
    """An exclusive lock of this machine's stressbed processes (a file lock in the cache)."""
    directory = _cache()
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stressbed"


def _present(client: Any, ref: str) -> bool:
    """Whether the engine has the image ``ref``."""
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def check_base(client: Any, tag: str | None) -> None:
    """ConfigError (exit 2), before anything is created, where the base image is missing and
    cannot be made here."""
    wanted = tag or base_tag()
    if _present(client, wanted):
        return
    if tag is not None:
        ensure_base(client, tag, lambda line: None)  # says what to do with a missing --base-image
    missing = _why_no_debootstrap(_os_release())
    if missing is not None:
        raise ConfigError(
            "the base image",
            f"{wanted} is missing and cannot be made here: {missing}",
            "stressbed images base on a Debian host with debootstrap (apt-get install "
            "debootstrap) as root, or --base-image naming a Python 3.11+ image on the engine",
        )


def make_base(client: Any, tag: str, say: Say) -> None:
    """debootstrap a minimal Debian of this host's release with Python, then import it."""
    release = _os_release()
    codename = release.get("VERSION_CODENAME")
    missing = _why_no_debootstrap(release)
    if missing is not None:
        raise ConfigError(
            "the base image",
            f"{tag} is missing and cannot be made here: {missing}",
            "stressbed images base on a Debian host with debootstrap (apt-get install "
            "debootstrap) as root, or --base-image naming a Python 3.11+ image on the engine",
        )
    assert codename is not None
    started = time.monotonic()
    say(f"making the base image {tag}: debootstrap {codename} (about a minute)")
    with tempfile.TemporaryDirectory(prefix="stressbed-base-") as work:
        root = Path(work) / "rootfs"
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            codename,
            str(root),
            _mirror(),
        ]
        _run(command, DEBOOTSTRAP_TIMEOUT_S, "debootstrap (is the mirror reachable?)")
        # The downloaded packages and apt's lists are not part of the image.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        python = _python_in(root)
        archive = Path(work) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(root, arcname=".")
        say(f"importing {tag} (Python {python})")
        repository, _, version = tag.partition(":")
        client.api.import_image_from_file(
            str(archive),
            repository=repository,
            tag=version or "latest",
            changes=[f"LABEL {LABEL_PYTHON}={python}", 'CMD ["python3"]'],
        )
    say(f"made {tag} in {time.monotonic() - started:.0f} s")


def _run(command: list[str], timeout_s: float, what: str) -> None:
    """Run a host command of an image's making; ProvisionError (exit 3) with its last line
    of output when it fails or takes longer than ``timeout_s``."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise ProvisionError(f"{what} took over {timeout_s:g} s") from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ProvisionError(f"{what} failed (exit {done.returncode}): {last[0][:300]}")


def _why_no_debootstrap(release: dict[str, str]) -> str | None:
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed"
    if release.get("ID") != "debian" and "debian" not in release.get("ID_LIKE", ""):
        return f"this host is {release.get('ID', 'not Debian')}, not Debian"
    if not release.get("VERSION_CODENAME"):
        return "this host's Debian release has no codename in /etc/os-release"
    if os.geteuid() != 0:
        return "debootstrap needs root"
    return None


def _python_in(root: Path) -> str:
    found = sorted(root.glob("usr/lib/python3.*/os.py"))
    if not found:
        raise ProvisionError("the base image has no Python 3 (debootstrap did not install it)")
    return found[-1].parent.name.removeprefix("python")


def python_of(client: Any, image_id: str) -> str:
    """The base image's Python version (``3.11``): its label, or asked of the image."""
    image = client.images.get(image_id)
    labelled = (image.labels or {}).get(LABEL_PYTHON)
    if labelled:
        return str(labelled)
    out = client.containers.run(
        image_id,
        ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        remove=True,
        network_mode="none",
        labels=Registry(client).labels("probe"),  # swept like a run's, if left by Ctrl-C
    )
    return str(out.decode().strip())


# -- the images built from the checkout -------------------------------------------------


def _wheels(checkout: Checkout, spec: ImageSpec, python: str, say: Say) -> Path:
    """The wheels the image installs, for the base's Python, downloaded into a cache on the
    host keyed by what they are for (a second build downloads nothing)."""
    wanted = [(checkout.root / spec.requirements).read_text()]
    if spec.builds_source:
        wanted += checkout.build_requires()
    key = hashlib.sha256("\n".join([python, *wanted]).encode()).hexdigest()[:16]
    target = _cache() / "wheels" / f"{spec.name}-py{python}-{key}"
    if (target / ".complete").exists():
        return target
    with _machine_lock("wheels"):  # another process may be downloading them: wait for it
        if not (target / ".complete").exists():
            _download(checkout, spec, python, target, say)
    return target


def _download(checkout: Checkout, spec: ImageSpec, python: str, target: Path, say: Say) -> None:
    say(f"downloading the {spec.name} image's Python packages for Python {python}")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--only-binary=:all:",
        "--python-version",
        python,
        "--dest",
        str(partial),
        "-r",
        str(checkout.root / spec.requirements),
        *(checkout.build_requires() if spec.builds_source else []),
    ]
    _run(command, DOWNLOAD_TIMEOUT_S, f"pip download of the {spec.name} image's packages")
    (partial / ".complete").write_text("")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def _inputs_hash(base_id: str, files: Iterable[tuple[str, Path]]) -> str:
    digest = hashlib.sha256(base_id.encode())
    for name, path in files:
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _context(members: list[tuple[str, Path]]) -> io.BytesIO:
    """The build context as a tar: each file under its name in the checkout (wheels under
    ``wheels/``), owned by root, with a fixed time, so the same inputs make the same tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in members:
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with path.open("rb") as f:
                tar.addfile(info, f)
    buffer.seek(0)
    return buffer


def ensure_image(client: Any, which: str, base_id: str, checkout: Checkout, say: Say) -> str:
    """The tag of the ``which`` image (``agent``, ``runner``) for this checkout and base:
    found by its inputs' hash, or built now (its build's output said a line at a time)."""
    spec = IMAGES[which]
    members = [(str(p.relative_to(checkout.root)), p) for p in checkout.files(spec)]
    # What pip installs is named by the requirement files (among the members) and the build
    # backend: an image found by this hash needs no download, so a run offline finds it.
    inputs = _inputs_hash(
        base_id + "\0" + "\0".join(checkout.build_requires() if spec.builds_source else []),
        members,
    )
    tag = f"{spec.name}:{inputs[:16]}"
    if _present(client, tag):
        return tag
    python = python_of(client, base_id)
    wheels = _wheels(checkout, spec, python, say)
    members += [(f"wheels/{p.name}", p) for p in sorted(wheels.glob("*.whl"))]
    say(f"building {tag} from {spec.dockerfile}")
    started = time.monotonic()
    last = ""
    try:
        for chunk in client.api.build(
            fileobj=_context(members),
            custom_context=True,
            dockerfile=spec.dockerfile,
            tag=tag,
            buildargs={"BASE": base_id},
            labels={LABEL_INPUTS: inputs},
            rm=True,
            forcerm=True,
            network_mode="none",  # nothing is fetched inside: the wheels are in the context
            decode=True,
        ):
            if "error" in chunk:
                raise ProvisionError(
                    f"building {tag} failed: {str(chunk['error']).strip()[:300]}"
                    + (f" (after: {last[:200]})" if last else "")
                )
            line = str(chunk.get("stream", "")).strip()
            if line:
                last = line
                if line.startswith("Step "):
                    say(f"  {line}")
    except docker.errors.APIError as exc:
        raise ProvisionError(f"building {tag} failed: {exc.explanation or exc}") from None
    say(f"built {tag} in {time.monotonic() - started:.0f} s")
    return tag
