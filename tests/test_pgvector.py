"""Whether HNSW indexes are safe on this database, and the portable pgvector build.

The decision is tested on its inputs (the database's library directory, the CPU's flags, the
marker a build leaves); the build itself on a copy of the wheel's library directory, with a
small stand-in source tree served from 127.0.0.1 (tests reach no other host), compiled by the
real ``make`` and C compiler. ``.ci/run`` builds the real pgvector with the same function, and
the suite then runs with HNSW indexes (tests/test_knowledge.py checks the index is used).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import socketserver
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cli import main as cli_main
from storage import pgvector

AVX512 = sorted(pgvector.AVX512)

STAND_IN_C = "int vector_is_portable(void) { return 1; }\n"
MAKEFILE = "vector.so: vector.c\n\t$(CC) -shared -fPIC -o vector.so vector.c\n"


def _tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def libdir(tmp_path: Path) -> Path:
    """A copy of the wheel's install (bin/pg_config and lib/postgresql), to build into."""
    wheel = pgvector.wheel_libdir()
    assert wheel is not None
    install = tmp_path / "pginstall"
    (install / "lib").mkdir(parents=True)
    shutil.copytree(wheel.parent.parent / "bin", install / "bin")
    copy = install / "lib" / "postgresql"
    shutil.copytree(wheel, copy)
    # As the wheel installed it, even where `switchboard db build-pgvector` already ran.
    if (copy / "vector.so.wheel").exists():
        (copy / "vector.so.wheel").replace(copy / "vector.so")
    (copy / pgvector.MARKER).unlink(missing_ok=True)
    return copy


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``: (base URL, directory)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    with socketserver.TCPServer(("127.0.0.1", 0), Quiet) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", root
        finally:
            server.shutdown()


# The decision.


def test_the_wheels_build_on_a_cpu_without_avx512_cannot_build_hnsw(tmp_path: Path) -> None:
    wheel = tmp_path / "lib"
    wheel.mkdir()
    (wheel / "vector.so").write_bytes(b"the wheel's")
    assert pgvector.hnsw_usable_with(str(wheel), {"sse4_2", "avx2", "fma"}, wheel) is False
    # The same library directory named another way is still the wheel's.
    assert pgvector.hnsw_usable_with(f"{wheel}/../lib", {"avx2"}, wheel) is False
    # Four of the five AVX-512 subsets are not enough.
    assert pgvector.hnsw_usable_with(str(wheel), AVX512[:-1], wheel) is False


def test_avx512_another_postgres_or_our_build_can(tmp_path: Path) -> None:
    wheel = tmp_path / "lib"
    wheel.mkdir()
    (wheel / "vector.so").write_bytes(b"the wheel's")
    assert pgvector.hnsw_usable_with(str(wheel), [*AVX512, "avx2"], wheel) is True
    assert pgvector.hnsw_usable_with("/usr/lib/postgresql/18/lib", {"avx2"}, wheel) is True
    assert pgvector.hnsw_usable_with(None, {"avx2"}, wheel) is True
    assert pgvector.hnsw_usable_with(str(wheel), {"avx2"}, None) is True
    library = wheel / "vector.so"
    (wheel / pgvector.MARKER).write_text(f"pgvector-0.8.2 {_sha(library.read_bytes())}\n")
    assert pgvector.hnsw_usable_with(str(wheel), {"avx2"}, wheel) is True
    # A reinstalled wheel puts its own library back: the marker no longer names those bytes.
    library.write_bytes(b"the wheel's, reinstalled")
    assert pgvector.hnsw_usable_with(str(wheel), {"avx2"}, wheel) is False


def test_cpu_flags_come_from_the_first_processor(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 avx512f\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert pgvector.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512f"}
    assert pgvector.cpu_flags(tmp_path / "absent") == frozenset()


# The build.


def test_a_build_replaces_the_library_keeps_the_wheels_and_marks_it(
    libdir: Path, served: tuple[str, Path]
) -> None:
    base, www = served
    source = _tarball({"pgvector-9.9/Makefile": MAKEFILE, "pgvector-9.9/vector.c": STAND_IN_C})
    (www / "pgvector.tar.gz").write_bytes(source)
    wheels = (libdir / "vector.so").read_bytes()
    assert pgvector.is_portable(libdir) is False

    target = pgvector.build(libdir=libdir, url=f"{base}/pgvector.tar.gz", sha256=_sha(source))

    assert target == libdir / "vector.so"
    assert b"vector_is_portable" in target.read_bytes()
    assert (libdir / "vector.so.wheel").read_bytes() == wheels
    assert pgvector.is_portable(libdir) is True
    assert pgvector.hnsw_usable_with(str(libdir), {"avx2"}, libdir) is True
    # Built again (an upgrade of the build): the wheel's original is kept, not our first build.
    pgvector.build(libdir=libdir, url=f"{base}/pgvector.tar.gz", sha256=_sha(source))
    assert (libdir / "vector.so.wheel").read_bytes() == wheels


@pytest.mark.parametrize(
    ("files", "sha", "message"),
    [
        (
            {"pgvector-9.9/Makefile": MAKEFILE, "pgvector-9.9/vector.c": STAND_IN_C},
            "0" * 64,
            "SHA-256 is",
        ),
        (
            {"pgvector-9.9/Makefile": MAKEFILE, "pgvector-9.9/vector.c": "int x = ;\n"},
            None,
            "compiling pgvector failed",
        ),
        (
            {"a/Makefile": MAKEFILE, "b/vector.c": STAND_IN_C},
            None,
            "not a release tarball",
        ),
    ],
    ids=["wrong-checksum", "does-not-compile", "two-top-level-directories"],
)
def test_a_failed_build_leaves_the_wheels_library_alone(
    libdir: Path, tmp_path: Path, files: dict[str, str], sha: str | None, message: str
) -> None:
    source = tmp_path / "source.tar.gz"
    data = _tarball(files)
    source.write_bytes(data)
    wheels = (libdir / "vector.so").read_bytes()
    with pytest.raises(pgvector.BuildError, match=message):
        pgvector.build(source, libdir=libdir, sha256=sha or _sha(data))
    assert (libdir / "vector.so").read_bytes() == wheels
    assert not (libdir / pgvector.MARKER).exists()
    assert not (libdir / "vector.so.wheel").exists()


def test_the_command_says_what_failed_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The wheel's own library must not change in a test: a source whose checksum cannot match
    # stops the command before anything is compiled or installed.
    source = tmp_path / "pgvector.tar.gz"
    source.write_bytes(_tarball({"pgvector-9.9/Makefile": MAKEFILE}))
    wheel = pgvector.wheel_libdir()
    assert wheel is not None
    before = (wheel / "vector.so").read_bytes()
    assert cli_main(["db", "build-pgvector", "--source", str(source)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the source's SHA-256 is ")
    assert "Traceback" not in err
    assert (wheel / "vector.so").read_bytes() == before
