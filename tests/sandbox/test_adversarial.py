"""Hostile programs: the verdict is right, the worker survives, the next job in the same
sandbox sees nothing of the previous one, and no container is left behind."""

from __future__ import annotations

import textwrap

import pytest

from tests.sandbox.helpers import FAST, judge_source, python_job
from worker.contract import Limits, TestResult, Verdict
from worker.judging.judge import Judge
from worker.languages import LANGUAGES
from worker.sandbox.pools import SandboxPools
from worker.sandbox.protocol import ERR_TAIL_BYTES

pytestmark = pytest.mark.docker

# Prints every process the job can see but itself (by name and uid as the job sees them: in
# its cell, every uid but its own reads as the overflow uid 65534), every file in places a job
# could write to, and leftover SysV IPC objects.
SNOOP = """
import os
me = os.readlink("/proc/self")  # its pid outside its cell, as /proc lists it
seen = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    except OSError:
        continue
    if pid != me:
        seen.append((status["Name"].strip(), int(status["Uid"].split()[0])))
print("processes", sorted(seen))
print("shm", sorted(os.listdir("/dev/shm")), "tmp", sorted(os.listdir("/tmp")))
print("box", "listable" if os.access("/box", os.R_OK) else "closed")
for table in ("shm", "sem", "msg"):
    with open(f"/proc/sysvipc/{table}") as f:
        print("ipc", table, len(f.readlines()) - 1)
"""
# all a job sees of the sandbox in its own /proc: its cell's init (a copy of the supervisor)
OWN = [("supervisor", 65534)]
CLEAN = f"processes {OWN}\nshm [] tmp []\nbox closed\nipc shm 0\nipc sem 0\nipc msg 0\n"


def run_py(
    judge: Judge,
    source: str,
    stdin: bytes = b"",
    expected: bytes | None = None,
    limits: Limits = FAST,
) -> TestResult:
    (result,) = judge_source(judge, "python", textwrap.dedent(source), [(stdin, expected)], limits)
    return result


def assert_next_job_sees_nothing(judge: Judge) -> None:
    result = run_py(judge, SNOOP)
    assert result.verdict == Verdict.AC, result
    assert result.stdout == CLEAN


def test_snoop_baseline_is_clean(judge: Judge) -> None:
    assert_next_job_sees_nothing(judge)


def test_fork_bomb_is_contained(judge: Judge) -> None:
    result = run_py(
        judge,
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """,
    )
    assert result.verdict in (Verdict.TLE, Verdict.RE)
    assert_next_job_sees_nothing(judge)


def test_c_fork_bomb_is_contained(judge: Judge) -> None:
    (result,) = judge_source(judge, "c", "#include <unistd.h>\nint main(){for(;;)fork();}\n")
    assert result.verdict in (Verdict.TLE, Verdict.RE)
    assert_next_job_sees_nothing(judge)


def test_memory_bomb_across_processes_is_mle(judge: Judge) -> None:
    result = run_py(
        judge,
        """
        import os, time
        for _ in range(4):
            if os.fork() == 0:
                data = b"x" * (60 * 1024 * 1024)
                time.sleep(5)
                os._exit(0)
        time.sleep(5)
    """,
    )
    assert result.verdict == Verdict.MLE
    assert_next_job_sees_nothing(judge)


def test_stderr_flood_is_capped_and_stopped(judge: Judge) -> None:
    result = run_py(judge, "import sys\nwhile True: sys.stderr.write('e' * 10000)\n")
    assert result.verdict == Verdict.TLE
    assert result.stderr_truncated
    assert len(result.stderr) <= 16 * 1024


@pytest.mark.parametrize("writes", [3000, 30000], ids=["within-the-ring", "around-it"])
def test_the_end_of_a_long_stderr_is_kept_in_order(pools: SandboxPools, writes: int) -> None:
    """Past its cap, stderr's last ERR_TAIL_BYTES are kept whole and in order, however the
    writes fall across the supervisor's ring: a runtime's out-of-memory words are there."""
    chunks = "(b'%d,' % i) * (i % 7 + 1)"
    source = f"import os\nfor i in range({writes}):\n    os.write(2, {chunks})\n"
    job = python_job(source.encode(), err_bytes=16384)
    report = pools.run(LANGUAGES["python"].image, job, 30)
    data = b"".join((b"%d," % i) * (i % 7 + 1) for i in range(writes))
    assert (report.stderr, report.stderr_total) == (data[:16384], len(data))
    assert report.stderr_tail == data[16384:][-ERR_TAIL_BYTES:]


def test_double_forked_daemon_neither_delays_verdict_nor_survives(judge: Judge) -> None:
    result = run_py(
        judge,
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)  # keeps stdout open, hoping to spy on the next job
            os._exit(0)
        print("parent done")
    """,
        expected=b"parent done\n",
    )
    assert result.verdict == Verdict.AC
    assert result.wall_time_ms < 1000
    assert_next_job_sees_nothing(judge)


def test_writes_outside_the_work_dir_fail(judge: Judge) -> None:
    result = run_py(
        judge,
        """
        import os
        for path in ("/etc/passwd", "/box/x", "/x", "/opt/runner/supervisor",
                     "/proc/1/fd/1", "/dev/shm/../x", "/proc/self/oom_score_adj"):
            try:
                open(path, "ab").close()
                print("wrote", path)
            except OSError as exc:
                print("denied", path)
        open("mine", "w").write("ok")
        print("workdir ok")
    """,
    )
    assert "wrote" not in result.stdout
    assert "workdir ok" in result.stdout
    assert_next_job_sees_nothing(judge)


FILL_WORK_DIR = """
import os
i = 0
try:
    while True:
        with open(f"f{i}", "wb") as f:
            f.write(b"z" * 60000)
        i += 1
except OSError as exc:
    print("stopped", exc.errno)
"""


def test_filling_the_work_dir_fails_cleanly_and_is_wiped(judge: Judge) -> None:
    """Files are memory (tmpfs): under a limit above the work area the job runs out of room
    (ENOSPC), under a lower one it is MLE; either way the next job has the room again."""
    roomy = Limits(cpu_time_ms=5000, wall_time_ms=10000, memory_mb=512, output_kb=64)
    result = run_py(judge, FILL_WORK_DIR, limits=roomy)
    assert result.stdout.startswith("stopped 28"), result  # ENOSPC
    result = run_py(judge, FILL_WORK_DIR, limits=Limits(cpu_time_ms=5000, wall_time_ms=10000))
    assert result.verdict == Verdict.MLE, result
    follow = run_py(judge, "open('big', 'wb').write(b'z' * 60000)\nprint('room')\n")
    assert follow.stdout == "room\n"


def test_chmod_locked_tree_is_still_wiped(judge: Judge) -> None:
    run_py(
        judge,
        """
        import os
        os.makedirs("a/b/c")
        open("a/b/c/f", "w").write("x")
        for d in ("a/b/c", "a/b", "a"):
            os.chmod(d, 0)
        os.chmod(".", 0)
    """,
    )
    assert_next_job_sees_nothing(judge)


def test_there_is_no_network_but_loopback(judge: Judge) -> None:
    result = run_py(
        judge,
        """
        import os, socket
        print(sorted(os.listdir("/sys/class/net")))
        try:
            socket.create_connection(("127.0.0.1", 80), timeout=1)
        except OSError as exc:
            print("refused")
    """,
    )
    assert result.stdout == "['lo']\nrefused\n"


def test_expected_output_is_nowhere_in_the_sandbox(judge: Judge) -> None:
    marker = b"S3CRET-EXPECTED-7f3a"
    result = run_py(
        judge,
        """
        import os
        needle = b"S3CRET-EXPECTED-" + b"7f3a"
        hits = []
        for root, dirs, files in os.walk("/"):
            if root in ("/proc", "/sys", "/dev"):
                dirs[:] = []
                continue
            for name in files:
                path = os.path.join(root, name)
                try:
                    if os.path.isfile(path) and needle in open(path, "rb").read():
                        hits.append(path)
                except OSError:
                    pass
        print(hits)
    """,
        expected=marker,
        limits=Limits(cpu_time_ms=5000, wall_time_ms=10000),
    )
    assert result.verdict == Verdict.WA
    assert result.stdout == "[]\n"


def test_no_setuid_files_and_no_way_back_to_root(judge: Judge) -> None:
    result = run_py(
        judge,
        """
        import os, stat
        found = []
        for root, dirs, files in os.walk("/"):
            if root in ("/proc", "/sys"):
                dirs[:] = []
                continue
            for name in files:
                try:
                    mode = os.lstat(os.path.join(root, name)).st_mode
                except OSError:
                    continue
                if mode & (stat.S_ISUID | stat.S_ISGID):
                    found.append(name)
        print("setuid", found)
        for attempt in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.setgroups([0])):
            try:
                attempt()
                print("became root")
            except OSError:  # EPERM, or EINVAL in a cell, where root is not even mapped
                print("refused")
        print(open("/proc/self/status").read().split("NoNewPrivs:")[1].split()[0])
    """,
        limits=Limits(cpu_time_ms=5000, wall_time_ms=10000),
    )
    assert result.stdout == "setuid []\nrefused\nrefused\nrefused\n1\n"


def test_supervisor_cannot_be_signalled_traced_or_read(judge: Judge) -> None:
    result = run_py(
        judge,
        """
        import ctypes, os, signal
        me = os.readlink("/proc/self")  # its pid outside its cell, as /proc lists it
        outcome = set()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if pid == me:
                continue
            for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
                try:
                    os.kill(int(pid), sig)
                    outcome.add("signalled")
                except PermissionError:
                    outcome.add("refused")
                except ProcessLookupError:  # outside the job's pid namespace: not even named
                    outcome.add("refused")
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.ptrace(16, int(pid), 0, 0) == 0:  # PTRACE_ATTACH
                outcome.add("traced")
            for f in ("environ", "mem", "fd/1"):
                try:
                    open(f"/proc/{pid}/{f}", "rb").read(1)
                    outcome.add("read " + f)
                except OSError:
                    pass
        print(sorted(outcome))
    """,
    )
    assert result.stdout == "['refused']\n"
    assert_next_job_sees_nothing(judge)


def test_leftovers_for_a_spy_are_removed(judge: Judge) -> None:
    run_py(
        judge,
        """
        import ctypes, os, time
        open("/dev/shm/spy", "w").write("hello next job")
        libc = ctypes.CDLL(None)
        libc.shmget(0, 4096, 0o1666)  # IPC_PRIVATE, IPC_CREAT | 0666: outlives the process
        libc.semget(0, 1, 0o1666)
        libc.msgget(0, 0o1666)
        if os.fork() == 0:
            time.sleep(60)
    """,
    )
    assert_next_job_sees_nothing(judge)


def test_huge_stdin_is_delivered_whole(judge: Judge) -> None:
    data = b"0123456789abcdef" * (1 << 20)  # 16 MB
    result = run_py(
        judge,
        """
        import hashlib, sys
        print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())
    """,
        stdin=data,
    )
    import hashlib

    assert result.stdout.strip() == hashlib.sha256(data).hexdigest()


def test_non_utf8_output_compares_as_bytes_and_is_shown_replaced(judge: Judge) -> None:
    result = run_py(
        judge, "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok')\n", expected=b"\xff\xfe ok"
    )
    assert result.verdict == Verdict.AC
    assert result.stdout == "\ufffd\ufffd ok"


def test_no_pseudo_terminal_message_queue_or_cgroup_within_reach(judge: Judge) -> None:
    """Pseudo-terminals buffer data no cgroup is charged for, their number is the host's and
    their echo runs in the kernel's workers, outside the sandbox's CPU; the sandbox's cgroup
    files would tell a job its interactor's memory and the size of the answer: a cell has
    none of them (and no POSIX message queues)."""
    result = run_py(
        judge,
        """
        import os, socket
        try:
            os.openpty()
            print("pty")
        except OSError:
            print("no pty")
        print(os.listdir("/sys/fs/cgroup"), os.listdir("/dev/mqueue"), os.listdir("/dev/pts"))
        try:
            socket.socketpair(socket.AF_INET)
        except OSError as exc:
            print(exc.errno)
        """,
    )
    assert result.verdict == Verdict.AC, result
    assert result.stdout == "no pty\n[] [] []\n13\n"


@pytest.mark.parametrize(
    "how",
    [
        "d = os.open('.', os.O_RDONLY)\nfor _ in range(400):\n    os.mkdir('d', dir_fd=d)\n"
        "    d, up = os.open('d', os.O_RDONLY, dir_fd=d), d\n    os.close(up)\n",  # 400 deep
        "import ctypes\nprint(ctypes.CDLL(None).syscall(56, 0x8000, 0, 0, 0, 0))\n",  # CLONE_PARENT
    ],
    ids=["deep", "clone_parent"],
)
def test_no_cheap_way_to_cost_the_sandbox(judge: Judge, how: str) -> None:
    """What a job leaves is taken apart without giving up the sandbox: a directory nested
    deeper than descriptors allow, a child made a sibling of the job (refused)."""
    pools = judge.runner
    assert isinstance(pools, SandboxPools)
    before = sum(sum(state["recycles"].values()) for state in pools.state())
    result = run_py(judge, f"import os\n{how}print('done')\n")
    assert result.verdict == Verdict.AC, result
    assert result.stdout.endswith("done\n")
    assert sum(sum(state["recycles"].values()) for state in pools.state()) == before
    assert_next_job_sees_nothing(judge)


# -- the same attacks from every language ------------------------------------------------------

OUTSIDE = ("/etc/passwd", "/x", "/opt/runner/supervisor", "/usr/bin/x", "/proc/1/fd/1")
# Each tries to append to every path of OUTSIDE (printing "wrote PATH" if it could), then writes
# a file of its own in its work dir and says "workdir ok".
WRITE_OUTSIDE = {
    "python": f"""
for path in {OUTSIDE!r}:
    try:
        open(path, "ab").close()
        print("wrote", path)
    except OSError:
        pass
open("mine", "w").write("ok")
print("workdir ok")
""",
    "c": """
#include <stdio.h>
int main(void) {
    const char *paths[] = {PATHS};
    for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
        FILE *f = fopen(paths[i], "a");
        if (f) { printf("wrote %s\\n", paths[i]); fclose(f); }
    }
    FILE *mine = fopen("mine", "w");
    if (mine && fputs("ok", mine) >= 0 && fclose(mine) == 0) puts("workdir ok");
    return 0;
}
""".replace("PATHS", ", ".join(f'"{p}"' for p in OUTSIDE)),
    "javascript": f"""
const fs = require("fs");
for (const path of {list(OUTSIDE)!r}) {{
  try {{ fs.appendFileSync(path, ""); console.log("wrote", path); }} catch (e) {{}}
}}
fs.writeFileSync("mine", "ok");
console.log("workdir ok");
""",
    "lua": """
for _, path in ipairs({PATHS}) do
  local f = io.open(path, "a")
  if f then print("wrote " .. path); f:close() end
end
local mine = assert(io.open("mine", "w"))
mine:write("ok")
mine:close()
print("workdir ok")
""".replace("PATHS", ", ".join(f'"{p}"' for p in OUTSIDE)),
    "ruby": f"""
{list(OUTSIDE)!r}.each do |path|
  File.open(path, "a") {{ puts "wrote #{{path}}" }}
rescue SystemCallError
end
File.write("mine", "ok")
puts "workdir ok"
""",
    "php": """<?php
foreach ([PATHS] as $path) {
    $f = @fopen($path, "a");
    if ($f !== false) { echo "wrote $path\\n"; fclose($f); }
}
file_put_contents("mine", "ok");
echo "workdir ok\\n";
""".replace("PATHS", ", ".join(f'"{p}"' for p in OUTSIDE)),
    "csharp": """
using System;
using System.IO;
class P {
    static void Main() {
        foreach (var path in new[] {PATHS}) {
            try {
                File.Open(path, FileMode.Append).Close();
                Console.WriteLine("wrote " + path);
            } catch (Exception) { }
        }
        File.WriteAllText("mine", "ok");
        Console.WriteLine("workdir ok");
    }
}
""".replace("PATHS", ", ".join(f'"{p}"' for p in OUTSIDE)),
    "pascal": """
uses BaseUnix;
var path: string; fd: longint; f: text;
begin
  for path in [PATHS] do begin
    fd := FpOpen(path, O_WRONLY or O_APPEND or O_CREAT, &644);
    if fd >= 0 then begin writeln('wrote ', path); FpClose(fd) end
  end;
  assign(f, 'mine'); rewrite(f); write(f, 'ok'); close(f);
  writeln('workdir ok')
end.
""".replace("PATHS", ", ".join(f"'{p}'" for p in OUTSIDE)),
    "haskell": """
import Control.Exception
import Control.Monad

main :: IO ()
main = do
  forM_ [PATHS] append
  writeFile "mine" "ok"
  putStrLn "workdir ok"
  where
    append path = try (appendFile path "") >>= either ignore (const (putStrLn ("wrote " ++ path)))
    ignore :: IOException -> IO ()
    ignore = const (return ())
""".replace("PATHS", ", ".join(f'"{p}"' for p in OUTSIDE)),
}
WRITE_OUTSIDE["cpp"] = WRITE_OUTSIDE["c"]
WRITE_OUTSIDE["go"] = """package main

import (
	"fmt"
	"os"
)

func main() {
	for _, path := range []string{PATHS} {
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			fmt.Println("wrote", path)
			f.Close()
		}
	}
	if os.WriteFile("mine", []byte("ok"), 0o644) == nil {
		fmt.Println("workdir ok")
	}
}
""".replace("PATHS", ", ".join(f'"{p}"' for p in OUTSIDE))
WRITE_OUTSIDE["rust"] = """
use std::fs::OpenOptions;

fn main() {
    for path in [PATHS] {
        if OpenOptions::new().append(true).create(true).open(path).is_ok() {
            println!("wrote {}", path);
        }
    }
    if std::fs::write("mine", "ok").is_ok() {
        println!("workdir ok");
    }
}
""".replace("PATHS", ", ".join(f'"{p}"' for p in OUTSIDE))
WRITE_OUTSIDE["java"] = """
import java.io.FileOutputStream;
public class Main {
    public static void main(String[] args) throws Exception {
        for (String path : new String[] {PATHS}) {
            try {
                new FileOutputStream(path, true).close();
                System.out.println("wrote " + path);
            } catch (Exception e) {
            }
        }
        try (var mine = new FileOutputStream("mine")) {
            mine.write("ok".getBytes());
        }
        System.out.println("workdir ok");
    }
}
""".replace("PATHS", ", ".join(f'"{p}"' for p in OUTSIDE))
WRITE_OUTSIDE["pypy"] = WRITE_OUTSIDE["python"]

# Each tries a TCP connection on the loopback and one to a public address, and prints
# "connected" if either is made, then "done". Standard Lua has no sockets: nothing to try.
NETWORK: dict[str, str | None] = {
    "python": """
import socket
for address in (("127.0.0.1", 80), ("1.1.1.1", 53)):
    try:
        socket.create_connection(address, timeout=1)
        print("connected")
    except OSError:
        pass
print("done")
""",
    "c": """
#include <arpa/inet.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    const char *hosts[] = {"127.0.0.1", "1.1.1.1"};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(i ? 53 : 80)};
        inet_pton(AF_INET, hosts[i], &to.sin_addr);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s >= 0 && connect(s, (struct sockaddr *)&to, sizeof to) == 0) puts("connected");
        if (s >= 0) close(s);
    }
    puts("done");
    return 0;
}
""",
    "javascript": """
const net = require("net");
let left = 2;
for (const [host, port] of [["127.0.0.1", 80], ["1.1.1.1", 53]]) {
  try {
    const s = net.connect({host, port, timeout: 1000});
    s.on("connect", () => { console.log("connected"); s.destroy(); });
    s.on("error", () => {});
    s.on("close", () => { if (--left === 0) console.log("done"); });
    s.on("timeout", () => s.destroy());
  } catch (e) { if (--left === 0) console.log("done"); }
}
""",
    "lua": None,
    "ruby": """
require "socket"
[["127.0.0.1", 80], ["1.1.1.1", 53]].each do |host, port|
  Socket.tcp(host, port, connect_timeout: 1).close
  puts "connected"
rescue SystemCallError, IOError, SocketError
end
puts "done"
""",
    "php": """<?php
foreach ([["127.0.0.1", 80], ["1.1.1.1", 53]] as [$host, $port]) {
    if (@fsockopen($host, $port, $errno, $error, 1) !== false) echo "connected\\n";
}
echo "done\\n";
""",
    "csharp": """
using System;
using System.Net.Sockets;
class P {
    static void Main() {
        var hosts = new[] { "127.0.0.1", "1.1.1.1" };
        var ports = new[] { 80, 53 };
        for (int i = 0; i < 2; i++) {
            try {
                if (new TcpClient().ConnectAsync(hosts[i], ports[i]).Wait(1000))
                    Console.WriteLine("connected");
            } catch (Exception) { }
        }
        Console.WriteLine("done");
    }
}
""",
    "pascal": """
uses Sockets;
var i, s: longint; to_: TInetSockAddr;
const hosts: array[0..1] of string = ('127.0.0.1', '1.1.1.1');
const ports: array[0..1] of word = (80, 53);
begin
  for i := 0 to 1 do begin
    s := fpSocket(AF_INET, SOCK_STREAM, 0);
    to_.sin_family := AF_INET;
    to_.sin_port := htons(ports[i]);
    to_.sin_addr := StrToNetAddr(hosts[i]);
    if (s >= 0) and (fpConnect(s, @to_, SizeOf(to_)) = 0) then writeln('connected');
    if s >= 0 then CloseSocket(s)
  end;
  writeln('done')
end.
""",
    # GHC ships no sockets package (network is not one of its own): the C calls, through the FFI
    "haskell": """
import Control.Monad
import Foreign
import Foreign.C

foreign import ccall "socket" c_socket :: CInt -> CInt -> CInt -> IO CInt
foreign import ccall "connect" c_connect :: CInt -> Ptr Word8 -> CUInt -> IO CInt
foreign import ccall "close" c_close :: CInt -> IO CInt

main :: IO ()
main = do
  forM_ [([127, 0, 0, 1], 80), ([1, 1, 1, 1], 53)] tryConnect
  putStrLn "done"
  where
    tryConnect (ip, port) = do
      s <- c_socket 2 1 0
      r <- allocaBytes 16 (connectTo s ip port)
      when (r == 0) (putStrLn "connected")
      c_close s
    connectTo s ip port p = do
      fillBytes p 0 16
      pokeByteOff p 0 (2 :: Word16)  -- AF_INET, in the host's order
      pokeByteOff p 2 (fromIntegral (port `div` 256 :: Int) :: Word8)
      pokeByteOff p 3 (fromIntegral (port `mod` 256 :: Int) :: Word8)
      zipWithM_ (pokeByteOff p) [4 .. 7] (ip :: [Word8])
      c_connect s p 16
""",
}
NETWORK["cpp"] = NETWORK["c"]
NETWORK["go"] = """package main

import (
	"fmt"
	"net"
	"time"
)

func main() {
	for _, address := range []string{"127.0.0.1:80", "1.1.1.1:53"} {
		if c, err := net.DialTimeout("tcp", address, time.Second); err == nil {
			fmt.Println("connected")
			c.Close()
		}
	}
	fmt.Println("done")
}
"""
NETWORK["rust"] = """
use std::net::TcpStream;
use std::time::Duration;

fn main() {
    for address in ["127.0.0.1:80", "1.1.1.1:53"] {
        let to = address.parse().unwrap();
        if TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok() {
            println!("connected");
        }
    }
    println!("done");
}
"""
NETWORK["java"] = """
import java.net.InetSocketAddress;
import java.net.Socket;
public class Main {
    public static void main(String[] args) {
        String[][] addresses = {{"127.0.0.1", "80"}, {"1.1.1.1", "53"}};
        for (String[] to : addresses) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(to[0], Integer.parseInt(to[1])), 1000);
                System.out.println("connected");
            } catch (Exception e) {
            }
        }
        System.out.println("done");
    }
}
"""
NETWORK["pypy"] = NETWORK["python"]

# Processes that make processes, without end; standard Lua cannot make one.
FORK_BOMB: dict[str, str | None] = {
    "python": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
    "        pass\n",
    "c": "#include <unistd.h>\nint main(){for(;;)fork();}\n",
    "cpp": "#include <unistd.h>\nint main(){for(;;)fork();}\n",
    # a JVM cannot fork: it starts JVMs running itself, which start more
    "java": "public class Main { public static void main(String[] a) {\n"
    "  String java = ProcessHandle.current().info().command().orElseThrow();\n"
    '  for (;;) try { new ProcessBuilder(java, "-jar", "main.jar").start(); }\n'
    "  catch (Exception e) { }\n} }\n",
    "javascript": "const cp = require('child_process');\n"
    "for (;;) { try { cp.spawn(process.execPath, [__filename]); } catch (e) {} }\n",
    "lua": None,
    "ruby": "loop { fork rescue nil }\n",
    "php": "<?php\nwhile (true) { @pcntl_fork(); }\n",
    # Go cannot fork: it starts itself again, and so does every copy
    "go": 'package main\n\nimport "os/exec"\n\n'
    'func main() {\n\tfor {\n\t\texec.Command("/proc/self/exe").Start()\n\t}\n}\n',
    "rust": 'extern "C" {\n    fn fork() -> i32;\n}\n\nfn main() {\n    loop {\n'
    "        unsafe { fork() };\n    }\n}\n",
    "csharp": "using System.Runtime.InteropServices;\nclass P {\n"
    '    [DllImport("libc")] static extern int fork();\n'
    "    static void Main() { for (;;) fork(); }\n}\n",
    "pascal": "uses BaseUnix;\nbegin\n  while true do FpFork\nend.\n",
    "haskell": "import Control.Monad\nimport Foreign.C\n\n"
    'foreign import ccall "fork" c_fork :: IO CInt\n\n'
    "main :: IO ()\nmain = forever c_fork\n",
}
FORK_BOMB["pypy"] = FORK_BOMB["python"]
ATTACKS = {"WRITE_OUTSIDE": WRITE_OUTSIDE, "NETWORK": NETWORK, "FORK_BOMB": FORK_BOMB}


def test_every_language_has_each_attack_or_says_it_cannot() -> None:
    lacking = {
        name: [lang for lang in LANGUAGES if lang not in programs]
        for name, programs in ATTACKS.items()
    }
    assert not any(lacking.values()), f"attacks lacking a language (None: cannot): {lacking}"


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_no_language_writes_outside_its_work_dir(judge: Judge, lang: str) -> None:
    (result,) = judge_source(judge, lang, WRITE_OUTSIDE[lang], [(b"", None)], FAST)
    assert result.verdict == Verdict.AC, result
    assert result.stdout == "workdir ok\n", result
    assert_next_job_sees_nothing(judge)


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if NETWORK.get(lang)])
def test_no_language_reaches_the_network(judge: Judge, lang: str) -> None:
    (result,) = judge_source(judge, lang, NETWORK[lang] or "", [(b"", None)], FAST)
    assert result.verdict == Verdict.AC, result
    assert result.stdout == "done\n", result


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if FORK_BOMB.get(lang)])
def test_a_fork_bomb_in_any_language_is_contained(judge: Judge, lang: str) -> None:
    (result,) = judge_source(judge, lang, FORK_BOMB[lang] or "", [(b"", None)], FAST)
    assert result.verdict in (Verdict.TLE, Verdict.RE, Verdict.MLE), result
    assert_next_job_sees_nothing(judge)
