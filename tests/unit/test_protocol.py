import sys
from dataclasses import replace

import pytest

from worker.errors import ProtocolError
from worker.sandbox.fake import FakePool, pair_report, report
from worker.sandbox.protocol import (
    Decoder,
    File,
    Job,
    Pong,
    RunReport,
    check_name,
    demux,
    encode_job,
    encode_ping,
    parse_pong,
    parse_report,
)


def records(data: bytes) -> list[tuple[str, bytes]]:
    decoder = Decoder()
    decoder.feed(data)
    message = decoder.message()
    assert message is not None
    return message


def test_job_encoding_starts_with_uid_and_is_binary_safe() -> None:
    job = Job(
        uid=123456,
        argv=("/bin/x", "a b"),
        files=(File("main", b"\x00\xff\n", 0o755),),
        stdin=b"end 0\n",
    )
    got = records(encode_job(job))
    assert got[0] == ("op", b"run")
    assert got[1] == ("uid", b"123456")
    assert ("arg", b"a b") in got
    assert ("file", b"755 main\n\x00\xff\n") in got
    assert ("stdin", b"end 0\n") in got
    assert got[-1] == ("end", b"")


def test_decoder_waits_for_a_whole_message_fed_byte_by_byte() -> None:
    data = b"op 4\npongversion 1\n1end 0\n"
    decoder = Decoder()
    for i, byte in enumerate(data):
        assert decoder.message() is None or i == len(data)
        decoder.feed(bytes([byte]))
    message = decoder.message()
    assert message is not None
    # an answer without isolation fields comes from a supervisor that cannot make cells
    assert parse_pong(message) == Pong(version="1", isolation="uid")


def test_pong_says_whether_jobs_can_get_namespaces() -> None:
    fields = [("op", b"pong"), ("version", b"2"), ("isolation", b"uid")]
    refused = parse_pong([*fields, ("isolation_error", b"clone: Operation not permitted")])
    assert refused.isolation_error == "clone: Operation not permitted"
    able = parse_pong([("op", b"pong"), ("version", b"2"), ("isolation", b"namespaces")])
    assert (able.isolation, able.isolation_error) == ("namespaces", "")


def test_pong_says_how_jobs_are_measured() -> None:
    """Whether the sandbox's cgroup can be read (a sandbox that cannot is unfit) and whether
    the memory peak is the kernel's high-water mark or sampled."""
    fields = [("op", b"pong"), ("version", b"4"), ("isolation", b"namespaces")]
    exact = parse_pong([*fields, ("accounting", b"cgroup"), ("peak", b"exact")])
    assert (exact.accounting, exact.peak) == ("cgroup", "exact")
    blind = parse_pong(
        [*fields, ("accounting", b"the sandbox's cgroup CPU accounting cannot be read")]
    )
    assert blind.accounting.startswith("the sandbox's cgroup") and blind.peak == ""


def test_garbage_header_is_a_protocol_error() -> None:
    decoder = Decoder()
    decoder.feed(b"this is not a record\n")
    with pytest.raises(ProtocolError):
        decoder.message()


def test_overlong_header_is_a_protocol_error() -> None:
    decoder = Decoder()
    decoder.feed(b"x" * 200)
    with pytest.raises(ProtocolError):
        decoder.message()


def test_report_parses_numbers_output_and_collected_files() -> None:
    data = (
        b"op 6\nresult"
        b"status 2\nok"
        b"exit_code 2\n-1"
        b"signal 2\n11"
        b"stdout 3\na\x00b"
        b"file 13\n755 main\nELF!"
        b"cleanup 2\nok"
        b"end 0\n"
    )
    report = parse_report(records(data))
    assert report.signal == 11
    assert report.exit_code == -1
    assert report.stdout == b"a\x00b"
    assert report.files["main"].data == b"ELF!"
    assert report.files["main"].mode == 0o755


def test_job_names_its_fork_server_in_order_and_reports_say_how_it_ran() -> None:
    job = Job(uid=1000, argv=("/usr/bin/python3", "main.py"), server=("/usr/bin/python3", "fs.py"))
    assert [v for k, v in records(encode_job(job)) if k == "server"] == [
        b"/usr/bin/python3",
        b"fs.py",
    ]
    assert not [k for k, _ in records(encode_job(Job(uid=1000, argv=("x",)))) if k == "server"]
    base = b"op 6\nresultstatus 2\nokcleanup 2\nok"
    plain = parse_report(records(base + b"end 0\n"))
    assert (plain.via, plain.server_error) == ("exec", "")
    fallback = parse_report(records(base + b"via 4\nexecserver_error 4\ngoneend 0\n"))
    assert (fallback.via, fallback.server_error) == ("exec", "gone")


def test_job_names_its_parked_runtime_and_the_next_uid_and_reports_say_how_it_ran() -> None:
    argv = ("/usr/bin/node", "main.js")
    job = Job(uid=1000, argv=argv, park=("--require", "/opt/runner/park.js"), park_uid=1001)
    got = records(encode_job(job))
    assert [v for k, v in got if k == "park"] == [b"--require", b"/opt/runner/park.js"]
    assert ("park_uid", b"1001") in got
    assert not [k for k, _ in records(encode_job(Job(uid=1000, argv=argv))) if k[:4] == "park"]
    base = b"op 6\nresultstatus 2\nokcleanup 2\nok"
    parked = parse_report(records(base + b"via 6\nparkedend 0\n"))
    assert (parked.via, parked.park_error) == ("parked", "")
    thrown = parse_report(records(base + b"via 4\nexecpark_error 5\nlimitend 0\n"))
    assert (thrown.via, thrown.park_error) == ("exec", "limit")


def test_job_names_the_files_its_parked_runtime_starts_with() -> None:
    argv = ("/usr/lib/jvm/java/bin/java", "-jar", "main.jar")
    files = (("main.jar", "/opt/runner/hello.jar"),)
    job = Job(uid=1000, argv=argv, park=("-agentpath:/opt/runner/libpark.so",), park_files=files)
    got = records(encode_job(job))
    assert [v for k, v in got if k == "park_file"] == [b"main.jar=/opt/runner/hello.jar"]


def test_report_with_wrong_op_is_rejected() -> None:
    with pytest.raises(ProtocolError):
        parse_report(records(b"op 4\npongend 0\n"))


def test_ping_is_one_record_and_end() -> None:
    assert records(encode_ping()) == [("op", b"ping"), ("end", b"")]


def test_demux_splits_docker_frames_across_reads() -> None:
    frame1 = b"\x01\x00\x00\x00\x00\x00\x00\x03abc"
    frame2 = b"\x02\x00\x00\x00\x00\x00\x00\x02de"
    state = bytearray()
    data = frame1 + frame2
    got = (
        list(demux(data[:5], state))
        + list(demux(data[5:14], state))
        + list(demux(data[14:], state))
    )
    assert got == [(1, b"abc"), (2, b"de")]


@pytest.mark.parametrize(
    "name",
    ["main.py", "pkg/mod.py", "a.b/c-d/_e", "/".join("abcdefgh"), "x" * 100 + "/" + "y" * 99],
)
def test_file_names_may_be_relative_paths(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../x",
        "/etc/x",
        "a//b",
        "a/",
        ".",
        "a/./b",
        "a/../b",
        "/".join("abcdefghi"),
        "x" * 201,
        "a/" + "x" * 101,
        "x" * 101,
        "x" * 100 + "/" + "y" * 100,
        "sp ace",
        "new\nline",
        "dollar$",
        "é",
    ],
)
def test_names_the_supervisor_would_stop_over_are_refused_in_every_place(name: str) -> None:
    """A name the supervisor refuses stops it (and so costs the sandbox): the encoder refuses
    it first, as a file or a collected file, the job's or its partner's."""
    partner = Job(uid=2000, argv=("./interactor",))
    for job in (
        Job(uid=1000, argv=("x",), files=(File(name, b""),)),
        Job(uid=1000, argv=("x",), collect=(name,)),
        Job(uid=1000, argv=("x",), partner=replace(partner, files=(File(name, b""),))),
        Job(uid=1000, argv=("x",), partner=replace(partner, collect=(name,))),
    ):
        with pytest.raises(ValueError, match="file name"):
            encode_job(job)


def test_a_pair_is_the_jobs_section_then_an_empty_partner_record_then_the_partners() -> None:
    partner = Job(
        uid=2001,
        argv=("./interactor", "in.txt"),
        files=(File("in.txt", b"42 10\n"),),
        collect=("out/result.txt",),
        wall_ms=3000,
    )
    job = Job(uid=2000, argv=("./main",), files=(File("main", b"ELF", 0o755),), partner=partner)
    got = records(encode_job(job))
    split = got.index(("partner", b""))
    mine, theirs = got[1:split], got[split + 1 : -1]
    assert got[0] == ("op", b"run") and got[-1] == ("end", b"")
    assert mine[0] == ("uid", b"2000") and theirs[0] == ("uid", b"2001")
    assert ("file", b"755 main\nELF") in mine
    assert ("file", b"644 in.txt\n42 10\n") in theirs
    assert ("collect", b"out/result.txt") in theirs and ("wall_ms", b"3000") in theirs
    assert ("arg", b"in.txt") in theirs and ("arg", b"in.txt") not in mine
    # each reads the other's output: no stdin record in either section
    assert [name for name, _ in got if name == "stdin"] == []
    assert records(encode_job(replace(job, partner=None)))[-2] == ("stdin", b"")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"stdin": b"1\n"}, "no stdin bytes"),
        ({"partner_stdin": b"1\n"}, "no stdin bytes"),
        ({"partner_server": ("/usr/bin/python3", "fs.py")}, "no fork server"),
        ({"partner_park": ("--require", "park.js")}, "no parked runtime"),
        ({"partner_park_files": (("main.jar", "/opt/runner/hello.jar"),)}, "no parked runtime"),
        ({"park_uid": 2002}, "no runtime parked after it"),
        ({"partner_partner": Job(uid=3000, argv=("x",))}, "no partner of its own"),
        ({"partner_uid": 2000}, "uids of their own"),
    ],
)
def test_a_pair_the_supervisor_would_refuse_is_refused(change: dict[str, object], why: str) -> None:
    job = Job(uid=2000, argv=("./main",), partner=Job(uid=2001, argv=("./interactor",)))
    assert job.partner is not None
    mine = {k: v for k, v in change.items() if not k.startswith("partner_")}
    theirs = {k.removeprefix("partner_"): v for k, v in change.items() if k.startswith("partner_")}
    bad = replace(job, partner=replace(job.partner, **theirs), **mine)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=why):
        encode_job(bad)


def test_a_pair_answer_is_the_jobs_report_carrying_the_partners() -> None:
    data = (
        b"op 6\nresult"
        b"status 2\nok"
        b"exit_code 1\n0"
        b"killed 4\nwall"
        b"stdout 0\nstdout_total 1\n0"
        b"stderr 3\nwon"
        b"partner 0\n"
        b"status 2\nok"
        b"exit_code 1\n2"
        b"signal 2\n11"
        b"via 4\nexec"
        b"file 23\n644 out/result.txt\nlost"
        b"cleanup 2\nok"
        b"end 0\n"
    )
    mine = parse_report(records(data))
    theirs = mine.partner
    assert theirs is not None and theirs.partner is None
    assert (mine.exit_code, mine.killed, mine.stderr, mine.files) == (0, "wall", b"won", {})
    assert (theirs.exit_code, theirs.signal, theirs.killed) == (2, 11, "none")
    assert theirs.files["out/result.txt"].data == b"lost"
    # the cleanup is the whole run's, said once after both sections
    assert mine.cleanup == theirs.cleanup == "ok"
    assert parse_report(records(b"op 6\nresultstatus 2\nokend 0\n")).partner is None


def python(source: str, **fields: object) -> Job:
    return Job(uid=0, argv=(sys.executable, "-c", source), **fields)  # type: ignore[arg-type]


def test_the_fake_pool_runs_a_pair_wired_as_the_supervisor_wires_it() -> None:
    job = python(
        "import sys\nprint('ping', flush=True)\nprint('got', input(), file=sys.stderr)\n",
        wall_ms=5000,
        files=(File("pkg/mod.py", b""),),
    )
    partner = python(
        "import os\nline = input()\nprint('pong', flush=True)\nos.makedirs('out')\n"
        "open('out/result.txt', 'w').write(line)\n",
        wall_ms=5000,
        collect=("out/result.txt",),
    )
    done = FakePool().run("python", replace(job, partner=partner), 10)
    assert done.partner is not None
    assert (done.exit_code, done.stderr, done.stdout, done.stdout_total) == (
        0,
        b"got pong\n",
        b"",
        0,
    )
    assert (done.partner.exit_code, done.partner.stdout) == (0, b"")
    assert done.partner.files["out/result.txt"].data == b"ping"


def test_the_fake_pool_ends_each_job_of_a_pair_on_its_own() -> None:
    """A job that waits for a partner that waits too: its wall limit ends it, and the partner
    then reads EOF."""
    job = python("import sys\nsys.stdin.read()\n", wall_ms=300)
    partner = python("import sys\nsys.stdin.read()\nsys.exit(2)\n", wall_ms=5000)
    done = FakePool().run("python", replace(job, partner=partner), 10)
    assert done.partner is not None
    assert (done.killed, done.signal) == ("wall", 9)
    assert (done.partner.killed, done.partner.exit_code) == ("none", 2)
    assert done.partner.wall_us < 2_000_000


def test_a_scripted_fake_pool_answers_a_pair_with_both_reports() -> None:
    def script(image: str, job: Job) -> RunReport:
        assert job.partner is not None
        return pair_report(report(killed="cpu"), report(exit_code=1, stderr=b"over budget"))

    pool = FakePool(script)
    job = Job(uid=0, argv=("./main",), partner=Job(uid=0, argv=("./interactor",)))
    done = pool.run("native", job, 10)
    assert done.killed == "cpu"
    assert done.partner == report(exit_code=1, stderr=b"over budget")
    assert pool.calls == [("native", job)]
