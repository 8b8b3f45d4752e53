"""The wire format spoken with the in-container supervisor (images/supervisor/supervisor.c).

Both directions are a sequence of records, ``NAME SP LEN LF`` then ``LEN`` raw bytes, and a
message ends with the record ``end 0``. Binary-safe, trivially parsed in C, no JSON library
inside the sandbox.

Requests: ``op ping`` (answer ``op pong``, ``version``, ``isolation``: ``namespaces`` when the
supervisor can give jobs cells of their own here, else ``uid`` with ``isolation_error``) and
``op run`` with the fields of :class:`Job`. Answers to ``run``: ``status`` (``ok``/``error``),
``error``, ``exit_code``, ``signal``, ``cpu_us``, ``wall_us``, ``maxrss_kb`` (the job's memory,
images/supervisor/memory.c), ``killed`` (none/cpu/wall/output/memory), ``oom_kills``,
``via`` (``exec``, or ``server`` when a fork server started the job), ``server_error`` (why
a requested fork server was not used), ``stdout``, ``stdout_total``, ``stderr``,
``stderr_total``, ``file`` (collected files), ``cleanup`` (``ok`` or why the sandbox must be
recycled).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from worker.errors import ProtocolError

SUPERVISOR_VERSION = "2"
ISOLATIONS = ("namespaces", "uid")
MAX_HEADER = 96


@dataclass(frozen=True)
class File:
    name: str
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Job:
    """One program run inside a sandbox. Limits of 0 mean "not limited here"."""

    uid: int
    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    files: tuple[File, ...] = ()
    stdin: bytes = b""
    cpu_ms: int = 0
    wall_ms: int = 0
    mem_kb: int = 0
    procs: int = 0
    fsize_kb: int = 0
    nofile: int = 64
    stack_kb: int = 0
    out_bytes: int = 64 * 1024
    err_bytes: int = 64 * 1024
    collect: tuple[str, ...] = ()
    collect_max: int = 64 * 1024 * 1024
    # argv of a fork server that runs ``argv`` by forking a started interpreter
    server: tuple[str, ...] = ()
    # namespaces: a cell of its own (fresh user, IPC, mount and PID namespaces); uid: not
    isolation: str = "namespaces"


@dataclass(frozen=True)
class RunReport:
    """What the supervisor measured; verdicts are decided by the caller."""

    status: str
    error: str
    exit_code: int
    signal: int
    cpu_us: int
    wall_us: int
    maxrss_kb: int
    killed: str
    oom_kills: int
    stdout: bytes
    stdout_total: int
    stderr: bytes
    stderr_total: int
    cleanup: str
    files: dict[str, File] = field(default_factory=dict)
    via: str = "exec"
    server_error: str = ""


def _record(name: str, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        value = value.encode()
    return b"%s %d\n%s" % (name.encode(), len(value), value)


def encode_ping() -> bytes:
    return _record("op", "ping") + _record("end", "")


def encode_job(job: Job) -> bytes:
    # uid first: the supervisor creates the work dir from it before files and stdin arrive
    parts = [_record("op", "run"), _record("uid", job.uid), _record("isolate", job.isolation)]
    for name in (
        "cpu_ms",
        "wall_ms",
        "mem_kb",
        "procs",
        "fsize_kb",
        "nofile",
        "stack_kb",
        "out_bytes",
        "err_bytes",
        "collect_max",
    ):
        parts.append(_record(name, getattr(job, name)))
    parts += [_record("arg", a) for a in job.argv]
    parts += [_record("env", e) for e in job.env]
    parts += [_record("collect", c) for c in job.collect]
    parts += [_record("server", a) for a in job.server]
    for f in job.files:
        parts.append(_record("file", b"%o %s\n" % (f.mode, f.name.encode()) + f.data))
    parts.append(_record("stdin", job.stdin))
    parts.append(_record("end", ""))
    return b"".join(parts)


class Decoder:
    """Incremental decoder: feed bytes as they arrive, take whole messages out."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def message(self) -> list[tuple[str, bytes]] | None:
        """The next complete message's records, or None if more bytes are needed."""
        records: list[tuple[str, bytes]] = []
        pos = 0
        buf = self._buf
        while True:
            nl = buf.find(b"\n", pos, pos + MAX_HEADER)
            if nl < 0:
                if len(buf) - pos >= MAX_HEADER:
                    raise ProtocolError(f"record header too long: {bytes(buf[pos : pos + 40])!r}")
                return None
            try:
                name_b, len_b = bytes(buf[pos:nl]).split(b" ")
                size = int(len_b)
                name = name_b.decode("ascii")
            except (ValueError, UnicodeDecodeError):
                raise ProtocolError(f"bad record header {bytes(buf[pos:nl])!r}") from None
            if nl + 1 + size > len(buf):
                return None
            records.append((name, bytes(buf[nl + 1 : nl + 1 + size])))
            pos = nl + 1 + size
            if name == "end":
                del buf[:pos]
                return records


@dataclass(frozen=True)
class Pong:
    version: str
    isolation: str  # the strongest isolation the supervisor can give jobs here
    isolation_error: str = ""  # why cells cannot be made, when they cannot


def parse_pong(records: Iterable[tuple[str, bytes]]) -> Pong:
    fields = dict(records)
    if fields.get("op") != b"pong":
        raise ProtocolError(f"expected pong, got {fields.get('op')!r}")
    return Pong(
        version=fields.get("version", b"").decode(),
        isolation=fields.get("isolation", b"uid").decode(),
        isolation_error=fields.get("isolation_error", b"").decode(errors="replace"),
    )


def parse_report(records: list[tuple[str, bytes]]) -> RunReport:
    fields: dict[str, bytes] = {}
    files: dict[str, File] = {}
    for name, value in records:
        if name == "file":
            head, _, data = value.partition(b"\n")
            mode, _, fname = head.partition(b" ")
            files[fname.decode()] = File(fname.decode(), data, int(mode, 8))
        else:
            fields[name] = value
    if fields.get("op") != b"result":
        raise ProtocolError(f"expected result, got {fields.get('op')!r}")

    def text(key: str, default: str = "") -> str:
        return fields.get(key, default.encode()).decode(errors="replace")

    def number(key: str) -> int:
        try:
            return int(fields.get(key, b"0"))
        except ValueError:
            raise ProtocolError(f"field {key} is not a number") from None

    return RunReport(
        status=text("status"),
        error=text("error"),
        exit_code=number("exit_code"),
        signal=number("signal"),
        cpu_us=number("cpu_us"),
        wall_us=number("wall_us"),
        maxrss_kb=number("maxrss_kb"),
        killed=text("killed", "none"),
        oom_kills=number("oom_kills"),
        stdout=fields.get("stdout", b""),
        stdout_total=number("stdout_total"),
        stderr=fields.get("stderr", b""),
        stderr_total=number("stderr_total"),
        cleanup=text("cleanup", "missing"),
        files=files,
        via=text("via", "exec"),
        server_error=text("server_error"),
    )


def demux(data: bytes, state: bytearray) -> Iterator[tuple[int, bytes]]:
    """Split Docker's attach stream (8-byte frame headers when there is no TTY) into frames."""
    state += data
    while len(state) >= 8:
        size = int.from_bytes(state[4:8], "big")
        if len(state) < 8 + size:
            return
        stream = state[0]
        payload = bytes(state[8 : 8 + size])
        del state[: 8 + size]
        yield stream, payload
