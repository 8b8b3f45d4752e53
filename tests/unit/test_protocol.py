import pytest

from worker.errors import ProtocolError
from worker.sandbox.protocol import (
    Decoder,
    File,
    Job,
    Pong,
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
