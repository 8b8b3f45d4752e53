"""The wire format spoken with the in-container supervisor (images/supervisor/supervisor.c).

Both directions are a sequence of records, ``NAME SP LEN LF`` then ``LEN`` raw bytes, and a
message ends with the record ``end 0``. Binary-safe, trivially parsed in C, no JSON library
inside the sandbox.

Requests: ``op ping`` (answer ``op pong``, ``version``, ``isolation``: ``namespaces`` when the
supervisor can give jobs cells of their own here, else ``uid`` with ``isolation_error``;
``accounting``: ``cgroup`` when it can read a job's CPU time and memory off the sandbox's
cgroup, else why not; ``peak``: ``exact`` when the kernel keeps each job's high-water mark for
it, ``sampled`` when it is what the supervisor's looks saw) and
``op run`` with the fields of :class:`Job`. Answers to ``run``: ``status`` (``ok``/``error``),
``error``, ``exit_code``, ``signal``, ``cpu_us``, ``wall_us``, ``maxrss_kb`` (the job's memory,
images/supervisor/memory.c), ``killed`` (none/cpu/wall/output/memory), ``oom_kills``,
``via`` (``exec``, ``server`` when a fork server started the job, ``parked`` when a runtime
parked for it ran it), ``server_error`` (why a requested fork server was not used),
``park_error`` (why a job that could be handed to a parked runtime was exec'ed), ``stdout``,
``stdout_total``, ``stderr``, ``stderr_total``, ``stderr_tail`` (the last 64 KB past
``err_bytes``, when stderr was longer: a runtime's out-of-memory words come last), ``file``
(collected files), ``cleanup`` (``ok`` or why the sandbox must be recycled).

Parked runtimes (images/supervisor/park.c, since version 5): a job's ``park`` records are
its language's launcher options, put after ``argv[0]`` to start the runtime parked; with
``park_uid`` (the uid of the next job the worker will send this sandbox), the supervisor,
once it has answered, starts the runtime for that next job with this job's argv, environment
and limits, and hands it the next run only if that run is exactly such a job; otherwise it
is killed and the job exec'ed (``park_error`` says why). One runtime runs one job. Since
version 6, ``park_file`` records (``NAME=PATH``) name files the runtime needs in its work dir
before its job's arrive (java -jar reads the jar's manifest before the JVM starts): the
image's ``PATH`` is put there as ``NAME``, replaced by the job's own file ``NAME``; a job that
does not give them all is exec'ed.

A file's name (``file`` and ``collect``) is a relative path of at most :data:`MAX_PARTS`
parts and :data:`MAX_NAME` characters, each part a safe name (:func:`check_name`); the
supervisor makes the directories it needs inside the job's work dir.

Pair runs (interactive problems): a job with a :attr:`Job.partner` runs at the same time as
its partner (the problem's interactor, say) in the same sandbox, each in a cell of its own
under its own uid, wired by two pipes: the job's stdout is the partner's stdin and the
partner's stdout the job's stdin. In the request the partner's fields follow the job's after
an empty ``partner`` record, in the same names, starting with its own ``uid``; neither
section has a ``stdin`` record, and the partner's has no ``server`` (it is always exec'ed).
The answer is the job's fields (its ``stdout`` empty and ``stdout_total`` 0: the bytes go to
the partner, which the supervisor does not relay or count), then an empty ``partner`` record
and the partner's fields (its ``file`` records are its collected files, its stdout likewise
empty), then ``cleanup``, which is the whole run's. Each job is limited and measured on its
own: CPU, memory (memory.c: pairs), wall time from its own start (waiting counts), ``killed``
(``cpu``, ``wall`` or ``memory``; output goes to the other job, so never ``output``). When
one job ends, whatever is left of it dies, so the other reads EOF or gets SIGPIPE, and runs
until it ends too; the answer comes once both have.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from worker.errors import ProtocolError
from worker.programs import File

SUPERVISOR_VERSION = "6"
ISOLATIONS = ("namespaces", "uid")
ERR_TAIL_BYTES = 64 * 1024  # images/supervisor/supervisor.h
MAX_HEADER = 96
# a file's name: a relative path (supervisor.c, safe_name)
MAX_NAME = 200
MAX_PARTS = 8
MAX_PART = 100
SAFE_PART = re.compile(r"[A-Za-z0-9._-]+")


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
    # a parked runtime's launcher options (after argv[0]): this job may be handed to one
    park: tuple[str, ...] = ()
    # files the parked runtime starts with, (name in the work dir, file in the image): the
    # job's own files of those names replace them
    park_files: tuple[tuple[str, str], ...] = ()
    # the uid of the next job for this sandbox: a runtime is parked for it after this run
    park_uid: int = 0
    # namespaces: a cell of its own (fresh user, IPC, mount and PID namespaces); uid: not
    isolation: str = "namespaces"
    # run at the same time, wired to this job (its stdout is the partner's stdin and the
    # partner's stdout this job's stdin): neither has stdin bytes; see the module docstring
    partner: Job | None = None


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
    stderr_tail: bytes = b""  # the end of stderr past ``stderr`` (ERR_TAIL_BYTES at most)
    files: dict[str, File] = field(default_factory=dict)
    via: str = "exec"
    server_error: str = ""
    park_error: str = ""
    partner: RunReport | None = None  # the partner's, when the job had one


def _record(name: str, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        value = value.encode()
    return b"%s %d\n%s" % (name.encode(), len(value), value)


def encode_ping() -> bytes:
    return _record("op", "ping") + _record("end", "")


def check_name(name: str) -> None:
    """A file's name as the supervisor takes it: a relative path (``pkg/mod.py``) of at most
    MAX_PARTS safe parts and MAX_NAME characters, none empty, ``.`` or ``..``. A name it would
    refuse would stop the supervisor, and so cost the sandbox: refused here first."""
    parts = name.split("/")
    if not 0 < len(name) <= MAX_NAME or len(parts) > MAX_PARTS:
        raise ValueError(f"file name {name!r}: 1 to {MAX_NAME} characters, {MAX_PARTS} parts")
    for part in parts:
        if part in (".", "..") or len(part) > MAX_PART or not SAFE_PART.fullmatch(part):
            raise ValueError(
                f"file name {name!r}: each part of a relative path is 1 to {MAX_PART} of "
                "A-Z a-z 0-9 . _ -, and not . or .."
            )


def check_job(job: Job) -> None:
    """What the supervisor would refuse in ``job`` (and would stop over), as ValueError."""
    for one in (job, job.partner) if job.partner else (job,):
        for f in one.files:
            check_name(f.name)
        for name in one.collect:
            check_name(name)
    partner = job.partner
    if partner is None:
        return
    if job.stdin or partner.stdin:
        raise ValueError("a job with a partner reads the partner's output: no stdin bytes")
    if partner.partner is not None:
        raise ValueError("a partner has no partner of its own")
    if partner.server or partner.park or partner.park_files:
        raise ValueError("a partner is always exec'ed: no fork server, no parked runtime")
    if job.park_uid:
        raise ValueError("a pair is always exec'ed: no runtime parked after it")


def _job_records(job: Job) -> list[bytes]:
    # uid first: the supervisor creates the work dir from it before files and stdin arrive
    parts = [_record("uid", job.uid), _record("isolate", job.isolation)]
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
    parts += [_record("park", a) for a in job.park]
    parts += [_record("park_file", f"{name}={path}") for name, path in job.park_files]
    if job.park_uid:
        parts.append(_record("park_uid", job.park_uid))
    for f in job.files:
        parts.append(_record("file", b"%o %s\n" % (f.mode, f.name.encode()) + f.data))
    return parts


def encode_job(job: Job) -> bytes:
    """The ``run`` request for ``job`` (and its partner); ValueError when the supervisor would
    refuse it (:func:`check_job`), before anything reaches a sandbox."""
    check_job(job)
    if job.partner is not None and job.partner.uid == job.uid:
        raise ValueError("a job and its partner run under uids of their own")
    parts = [_record("op", "run"), *_job_records(job)]
    if job.partner is None:
        parts.append(_record("stdin", job.stdin))
    else:
        parts += [_record("partner", ""), *_job_records(job.partner)]
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
    accounting: str = ""  # "cgroup", or why a job's CPU and memory cannot be measured here
    peak: str = ""  # "exact" (the kernel's high-water mark) or "sampled"


def parse_pong(records: Iterable[tuple[str, bytes]]) -> Pong:
    fields = dict(records)
    if fields.get("op") != b"pong":
        raise ProtocolError(f"expected pong, got {fields.get('op')!r}")
    return Pong(
        version=fields.get("version", b"").decode(),
        isolation=fields.get("isolation", b"uid").decode(),
        isolation_error=fields.get("isolation_error", b"").decode(errors="replace"),
        accounting=fields.get("accounting", b"").decode(errors="replace"),
        peak=fields.get("peak", b"").decode(errors="replace"),
    )


def parse_report(records: list[tuple[str, bytes]]) -> RunReport:
    """The answer to a ``run``: the job's report, with its partner's when it had one. The
    records after a ``partner`` record are the partner's, but for ``cleanup``: the run's."""
    sections: list[tuple[dict[str, bytes], dict[str, File]]] = [({}, {})]
    cleanup = b"missing"
    for name, value in records:
        fields, files = sections[-1]
        if name == "partner" and len(sections) == 1:
            sections.append(({}, {}))
        elif name == "cleanup":
            cleanup = value
        elif name == "file":
            head, _, data = value.partition(b"\n")
            mode, _, fname = head.partition(b" ")
            try:
                files[fname.decode()] = File(fname.decode(), data, int(mode, 8))
            except (UnicodeDecodeError, ValueError):
                raise ProtocolError(f"bad file record header {head[:60]!r}") from None
        else:
            fields[name] = value
    if sections[0][0].get("op") != b"result":
        raise ProtocolError(f"expected result, got {sections[0][0].get('op')!r}")
    partner = _report(*sections[1], cleanup) if len(sections) > 1 else None
    return _report(*sections[0], cleanup, partner)


def _report(
    fields: dict[str, bytes],
    files: dict[str, File],
    cleanup: bytes,
    partner: RunReport | None = None,
) -> RunReport:
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
        stderr_tail=fields.get("stderr_tail", b""),
        cleanup=cleanup.decode(errors="replace"),
        files=files,
        via=text("via", "exec"),
        server_error=text("server_error"),
        park_error=text("park_error"),
        partner=partner,
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
