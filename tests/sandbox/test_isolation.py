"""A job reaches nothing of the next one, whatever permissions it sets, and nothing it leaves
can distort the next one's verdict; its memory is every page it causes; it holds no
capability and cannot make namespaces of its own; a sandbox that cannot isolate jobs as asked
is unfit, unless the operator asked for less. Real sandboxes, every language."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import replace

import docker
import pytest
from structlog.testing import capture_logs

from tests.conftest import RUN_ID, TEST_LABEL, started_pools
from tests.sandbox.helpers import FAST, judge_source, verdict
from worker.contract import Limits, Verdict
from worker.errors import IsolationUnavailable
from worker.judging.judge import Judge
from worker.languages import LANGUAGES
from worker.sandbox import open_pools
from worker.sandbox.container import CAPABILITIES, Sandbox
from worker.sandbox.pools import SandboxPools
from worker.sandbox.seccomp import profile, profile_json
from worker.settings import Settings

pytestmark = pytest.mark.docker

KEY = 0x5EC7E7  # the SysV key a spy plants under and a later job looks up
SECRET = "S3CRET-of-the-last-job"
ROOMY = Limits(cpu_time_ms=4000, wall_time_ms=8000, memory_mb=512, output_kb=64, processes=8)

# What a hostile job leaves for the next one, per language: SysV objects under a known key,
# given away to another owner where the kernel lets it (IPC_SET), a locked directory in
# /dev/shm and a file in /tmp holding a secret, and a process that sleeps on.
PLANT_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    int shm = shmget(KEY, 4096, IPC_CREAT | 0666);
    char *p = (char *)shmat(shm, 0, 0);
    strcpy(p, SECRET);
    shmdt(p);
    struct shmid_ds ds;
    shmctl(shm, IPC_STAT, &ds);
    ds.shm_perm.uid = 0; /* not the creator's any more: refused in a cell, allowed without */
    shmctl(shm, IPC_SET, &ds);
    msgget(KEY, IPC_CREAT | 0666);
    semget(KEY, 1, IPC_CREAT | 0666);
    mkdir("/dev/shm/spy", 0700);
    int fd = open("/dev/shm/spy/note", O_CREAT | O_WRONLY, 0644);
    write(fd, SECRET, strlen(SECRET));
    close(fd);
    chmod("/dev/shm/spy", 0311);
    fd = open("/tmp/note", O_CREAT | O_WRONLY, 0644);
    write(fd, SECRET, strlen(SECRET));
    if (fork() == 0) { setsid(); sleep(60); }
    puts("planted");
    return 0;
}
""".replace("KEY", str(KEY)).replace("SECRET", f'"{SECRET}"')

PEEK_C = r"""
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>
static void file(const char *path) {
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd >= 0 && read(fd, buf, sizeof buf - 1) > 0) printf("read %s\n", path);
}
int main(void) {
    int shm = shmget(KEY, 0, 0);
    char *p = shm >= 0 ? (char *)shmat(shm, 0, SHM_RDONLY) : (char *)-1;
    if (p != (char *)-1) printf("shm %s\n", p);
    if (msgget(KEY, 0) >= 0) puts("msg found");
    if (semget(KEY, 0, 0) >= 0) puts("sem found");
    file("/dev/shm/spy/note");
    file("/tmp/note");
    char self[32] = {0};
    readlink("/proc/self", self, sizeof self - 1);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue; /* not self, thread-self */
        char path[300], cmd[64] = {0};
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd >= 0 && read(fd, cmd, sizeof cmd - 1) > 0 && strcmp(cmd, "./main") == 0 &&
            strcmp(e->d_name, self) != 0)
            printf("process %s\n", e->d_name);
    }
    puts("looked");
    return 0;
}
""".replace("KEY", str(KEY))

PLANT_PY = f"""
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget({KEY}, 4096, 0o1666)
addr = libc.shmat(shm, None, 0)
ctypes.memmove(addr, b"{SECRET}", {len(SECRET)})
libc.shmdt(ctypes.c_void_p(addr))
ds = ctypes.create_string_buffer(256)
libc.shmctl(shm, 2, ds)  # IPC_STAT
ds[4:8] = (0).to_bytes(4, "little")  # shm_perm.uid: another owner
libc.shmctl(shm, 1, ds)  # IPC_SET
libc.msgget({KEY}, 0o1666)
libc.semget({KEY}, 1, 0o1666)
os.mkdir("/dev/shm/spy")
open("/dev/shm/spy/note", "w").write("{SECRET}")
os.chmod("/dev/shm/spy", 0o311)
try:
    open("/tmp/note", "w").write("{SECRET}")
except OSError:
    pass  # without a cell /tmp is the image's, read-only

if os.fork() == 0:
    os.setsid()
    time.sleep(60)
print("planted")
"""

PEEK_PY = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget({KEY}, 0, 0)
if shm >= 0:
    print("shm", ctypes.string_at(libc.shmat(shm, None, 0o10000)))
if libc.msgget({KEY}, 0) >= 0:
    print("msg found")
if libc.semget({KEY}, 0, 0) >= 0:
    print("sem found")
for path in ("/dev/shm/spy/note", "/tmp/note"):
    try:
        open(path).read()
        print("read", path)
    except OSError:
        pass
me = os.readlink("/proc/self")
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        sleeping = open(f"/proc/{{pid}}/cmdline", "rb").read().endswith(b"main.py\\0")
    except OSError:
        continue
    if sleeping and pid != me:
        print("process", pid)
print("looked")
"""

PLANT_JS = f"""
const fs = require("fs"), cp = require("child_process");
fs.mkdirSync("/dev/shm/spy");
fs.writeFileSync("/dev/shm/spy/note", "{SECRET}");
fs.chmodSync("/dev/shm/spy", 0o311);
fs.writeFileSync("/tmp/note", "{SECRET}");
cp.spawn(process.execPath, ["-e", "setTimeout(() => {{}}, 60000)", "spy"],
         {{detached: true, stdio: "ignore"}}).unref();
console.log("planted");
"""

PEEK_JS = """
const fs = require("fs");
for (const path of ["/dev/shm/spy/note", "/tmp/note"]) {
  try { fs.readFileSync(path); console.log("read", path); } catch (e) {}
}
for (const pid of fs.readdirSync("/proc").filter((p) => /^\\d+$/.test(p))) {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`).toString();
    if (cmd.includes("spy")) console.log("process", pid);
  } catch (e) {}
}
console.log("looked");
"""

# Java has no SysV IPC, and its only process to leave would be a second JVM, more threads than
# ROOMY allows: it plants files and a locked directory
PLANT_JAVA = f"""
import java.nio.file.*;
import java.nio.file.attribute.PosixFilePermissions;
public class Main {{
    public static void main(String[] args) throws Exception {{
        Path spy = Files.createDirectory(Path.of("/dev/shm/spy"));
        Files.writeString(spy.resolve("note"), "{SECRET}");
        Files.setPosixFilePermissions(spy, PosixFilePermissions.fromString("-wx--x--x"));
        Files.writeString(Path.of("/tmp/note"), "{SECRET}");
        System.out.println("planted");
    }}
}}
"""

PEEK_JAVA = """
import java.nio.file.*;
public class Main {
    public static void main(String[] args) {
        for (String path : new String[] {"/dev/shm/spy/note", "/tmp/note"}) {
            try {
                Files.readString(Path.of(path));
                System.out.println("read " + path);
            } catch (Exception e) {
            }
        }
        System.out.println("looked");
    }
}
"""

# Standard Lua can write files, and nothing else (no directories, processes or SysV objects)
PLANT_LUA = f"""
for _, path in ipairs({{"/tmp/note", "/dev/shm/note"}}) do
  local f = assert(io.open(path, "w"))
  f:write("{SECRET}")
  f:close()
end
print("planted")
"""

PEEK_LUA = """
for _, path in ipairs({"/tmp/note", "/dev/shm/note"}) do
  local f = io.open(path)
  if f then print("read " .. path) end
end
print("looked")
"""

PLANT_RB = f"""
require "fiddle"
libc = Fiddle.dlopen(nil)
int = Fiddle::TYPE_INT
get = ->(name, *args) {{ Fiddle::Function.new(libc[name], args, int) }}
get.("shmget", int, Fiddle::TYPE_SIZE_T, int).call({KEY}, 4096, 0o1666)
get.("msgget", int, int).call({KEY}, 0o1666)
get.("semget", int, int, int).call({KEY}, 1, 0o1666)
Dir.mkdir("/dev/shm/spy")
File.write("/dev/shm/spy/note", "{SECRET}")
File.chmod(0o311, "/dev/shm/spy")
File.write("/tmp/note", "{SECRET}")
Process.detach(fork {{ Process.setsid; $0 = "spy"; sleep 60 }})
puts "planted"
"""

PEEK_RB = f"""
require "fiddle"
libc = Fiddle.dlopen(nil)
int = Fiddle::TYPE_INT
get = ->(name, *args) {{ Fiddle::Function.new(libc[name], args, int) }}
puts "shm found" if get.("shmget", int, Fiddle::TYPE_SIZE_T, int).call({KEY}, 0, 0) >= 0
puts "msg found" if get.("msgget", int, int).call({KEY}, 0) >= 0
puts "sem found" if get.("semget", int, int, int).call({KEY}, 0, 0) >= 0
["/dev/shm/spy/note", "/tmp/note"].each {{ |path| puts "read #{{path}}" if File.readable?(path) }}
Dir.children("/proc").grep(/\\A\\d+\\z/).each do |pid|
  cmd = File.read("/proc/#{{pid}}/cmdline") rescue next
  puts "process #{{pid}}" if cmd.start_with?("spy")
end
puts "looked"
"""

PLANT_PHP = f"""<?php
shmop_open({KEY}, "c", 0666, 4096);
msg_get_queue({KEY}, 0666);
sem_get({KEY}, 1, 0666);
mkdir("/dev/shm/spy");
file_put_contents("/dev/shm/spy/note", "{SECRET}");
chmod("/dev/shm/spy", 0311);
file_put_contents("/tmp/note", "{SECRET}");
if (pcntl_fork() === 0) {{ posix_setsid(); cli_set_process_title("spy"); sleep(60); exit(0); }}
echo "planted\\n";
"""

# (PHP's sem_get makes the semaphore it asks for: the shared memory and the queue stand for it)
PEEK_PHP = f"""<?php
if (@shmop_open({KEY}, "a", 0, 0) !== false) echo "shm found\\n";
if (msg_queue_exists({KEY})) echo "msg found\\n";
foreach (["/dev/shm/spy/note", "/tmp/note"] as $path) {{
    if (@file_get_contents($path) !== false) echo "read $path\\n";
}}
foreach (scandir("/proc") as $pid) {{
    $cmd = ctype_digit($pid) ? (string) @file_get_contents("/proc/$pid/cmdline") : "";
    if (str_starts_with($cmd, "spy")) echo "process $pid\\n";
}}
echo "looked\\n";
"""

# Go cannot fork: the sleeper is the program again (/proc/self/exe), told so by its argument
PLANT_GO = f"""package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"
)

func main() {{
	if len(os.Args) > 1 {{
		time.Sleep(60 * time.Second)
		return
	}}
	shm, _, _ := syscall.Syscall(syscall.SYS_SHMGET, {KEY}, 4096, 0o1666)
	addr, _, _ := syscall.Syscall(syscall.SYS_SHMAT, shm, 0, 0)
	copy((*[64]byte)(unsafe.Pointer(addr))[:], "{SECRET}")
	syscall.Syscall(syscall.SYS_SHMDT, addr, 0, 0)
	syscall.Syscall(syscall.SYS_MSGGET, {KEY}, 0o1666, 0)
	syscall.Syscall(syscall.SYS_SEMGET, {KEY}, 1, 0o1666)
	os.Mkdir("/dev/shm/spy", 0o700)
	os.WriteFile("/dev/shm/spy/note", []byte("{SECRET}"), 0o644)
	os.Chmod("/dev/shm/spy", 0o311)
	os.WriteFile("/tmp/note", []byte("{SECRET}"), 0o644)
	spy := exec.Command("/proc/self/exe", "spy")
	spy.SysProcAttr = &syscall.SysProcAttr{{Setsid: true}}
	spy.Start()
	fmt.Println("planted")
}}
"""

PEEK_GO = f"""package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {{
	if _, _, e := syscall.Syscall(syscall.SYS_SHMGET, {KEY}, 0, 0); e == 0 {{
		fmt.Println("shm found")
	}}
	if _, _, e := syscall.Syscall(syscall.SYS_MSGGET, {KEY}, 0, 0); e == 0 {{
		fmt.Println("msg found")
	}}
	if _, _, e := syscall.Syscall(syscall.SYS_SEMGET, {KEY}, 0, 0); e == 0 {{
		fmt.Println("sem found")
	}}
	for _, path := range []string{{"/dev/shm/spy/note", "/tmp/note"}} {{
		if _, err := os.ReadFile(path); err == nil {{
			fmt.Println("read", path)
		}}
	}}
	me, _ := os.Readlink("/proc/self")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {{
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && e.Name() != me && strings.Contains(string(cmd), "spy") {{
			fmt.Println("process", e.Name())
		}}
	}}
	fmt.Println("looked")
}}
"""

# Rust's standard library has no SysV IPC nor fork: libc's, declared (std links libc)
PLANT_RS = f"""
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;

extern "C" {{
    fn shmget(key: i32, size: usize, flags: i32) -> i32;
    fn shmat(id: i32, addr: *const u8, flags: i32) -> *mut u8;
    fn shmdt(addr: *const u8) -> i32;
    fn msgget(key: i32, flags: i32) -> i32;
    fn semget(key: i32, n: i32, flags: i32) -> i32;
    fn fork() -> i32;
    fn setsid() -> i32;
}}

fn main() {{
    unsafe {{
        let p = shmat(shmget({KEY}, 4096, 0o1666), std::ptr::null(), 0);
        std::ptr::copy_nonoverlapping(b"{SECRET}".as_ptr(), p, {len(SECRET)});
        shmdt(p);
        msgget({KEY}, 0o1666);
        semget({KEY}, 1, 0o1666);
    }}
    std::fs::create_dir("/dev/shm/spy").unwrap();
    std::fs::write("/dev/shm/spy/note", "{SECRET}").unwrap();
    std::fs::set_permissions("/dev/shm/spy", Permissions::from_mode(0o311)).unwrap();
    std::fs::write("/tmp/note", "{SECRET}").unwrap();
    if unsafe {{ fork() }} == 0 {{
        unsafe {{ setsid() }};
        std::thread::sleep(std::time::Duration::from_secs(60));
    }}
    println!("planted");
}}
"""

PEEK_RS = f"""
extern "C" {{
    fn shmget(key: i32, size: usize, flags: i32) -> i32;
    fn msgget(key: i32, flags: i32) -> i32;
    fn semget(key: i32, n: i32, flags: i32) -> i32;
}}

fn main() {{
    unsafe {{
        if shmget({KEY}, 0, 0) >= 0 {{ println!("shm found"); }}
        if msgget({KEY}, 0) >= 0 {{ println!("msg found"); }}
        if semget({KEY}, 0, 0) >= 0 {{ println!("sem found"); }}
    }}
    for path in ["/dev/shm/spy/note", "/tmp/note"] {{
        if std::fs::read(path).is_ok() {{ println!("read {{}}", path); }}
    }}
    let me = std::fs::read_link("/proc/self").unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {{
        let pid = entry.file_name();
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let numeric = pid.to_str().map_or(false, |p| p.bytes().all(|b| b.is_ascii_digit()));
        if numeric && cmd == b"./main\\0" && pid.as_os_str() != me.as_os_str() {{
            println!("process {{:?}}", pid);
        }}
    }}
    println!("looked");
}}
"""

# Mono: libc through P/Invoke; the spy is a fork of the runtime (the wrappers it calls were
# bound before the fork, so the child runs no JIT), sleeping in a session of its own
PLANT_CS = f"""
using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
class Plant {{
    [DllImport("libc")] static extern int shmget(int key, UIntPtr size, int flags);
    [DllImport("libc")] static extern IntPtr shmat(int id, IntPtr addr, int flags);
    [DllImport("libc")] static extern int shmdt(IntPtr addr);
    [DllImport("libc")] static extern int msgget(int key, int flags);
    [DllImport("libc")] static extern int semget(int key, int count, int flags);
    [DllImport("libc")] static extern int chmod(string path, int mode);
    [DllImport("libc")] static extern int fork();
    [DllImport("libc")] static extern int setsid();
    [DllImport("libc")] static extern uint sleep(uint seconds);
    static void Main() {{
        int flags = Convert.ToInt32("1666", 8);
        IntPtr p = shmat(shmget({KEY}, (UIntPtr)4096, flags), IntPtr.Zero, 0);
        byte[] secret = Encoding.ASCII.GetBytes("{SECRET}");
        Marshal.Copy(secret, 0, p, secret.Length);
        shmdt(p);
        msgget({KEY}, flags);
        semget({KEY}, 1, flags);
        Directory.CreateDirectory("/dev/shm/spy");
        File.WriteAllText("/dev/shm/spy/note", "{SECRET}");
        chmod("/dev/shm/spy", Convert.ToInt32("311", 8));
        File.WriteAllText("/tmp/note", "{SECRET}");
        sleep(0);
        setsid();
        if (fork() == 0) {{ setsid(); for (;;) sleep(60); }}
        Console.WriteLine("planted");
    }}
}}
"""

PEEK_CS = f"""
using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
class Peek {{
    [DllImport("libc")] static extern int shmget(int key, UIntPtr size, int flags);
    [DllImport("libc")] static extern int msgget(int key, int flags);
    [DllImport("libc")] static extern int semget(int key, int count, int flags);
    [DllImport("libc")] static extern long readlink(string path, byte[] buf, long size);
    static void Main() {{
        if (shmget({KEY}, UIntPtr.Zero, 0) >= 0) Console.WriteLine("shm found");
        if (msgget({KEY}, 0) >= 0) Console.WriteLine("msg found");
        if (semget({KEY}, 0, 0) >= 0) Console.WriteLine("sem found");
        foreach (var path in new[] {{ "/dev/shm/spy/note", "/tmp/note" }}) {{
            try {{ File.ReadAllText(path); Console.WriteLine("read " + path); }}
            catch (Exception) {{ }}
        }}
        var buf = new byte[32];
        var self = Encoding.ASCII.GetString(buf, 0, (int)readlink("/proc/self", buf, 32));
        foreach (var dir in Directory.GetDirectories("/proc")) {{
            var pid = Path.GetFileName(dir);
            if (pid == self || !char.IsDigit(pid[0])) continue;
            try {{
                if (File.ReadAllText(dir + "/cmdline").StartsWith("/usr/bin/mono"))
                    Console.WriteLine("process " + pid);
            }} catch (Exception) {{ }}
        }}
        Console.WriteLine("looked");
    }}
}}
"""

PLANT_PAS = f"""
uses BaseUnix, ipc, SysUtils;
const secret = '{SECRET}';
var p: pointer; f: text;
begin
  p := shmat(shmget({KEY}, 4096, IPC_CREAT or &666), nil, 0);
  Move(secret[1], p^, length(secret));
  shmdt(p);
  msgget({KEY}, IPC_CREAT or &666);
  semget({KEY}, 1, IPC_CREAT or &666);
  FpMkdir('/dev/shm/spy', &700);
  assign(f, '/dev/shm/spy/note'); rewrite(f); write(f, secret); close(f);
  FpChmod('/dev/shm/spy', &311);
  assign(f, '/tmp/note'); rewrite(f); write(f, secret); close(f);
  if FpFork = 0 then begin FpSetsid; Sleep(60000); halt(0) end;
  writeln('planted')
end.
"""

PEEK_PAS = f"""
uses BaseUnix, Unix, ipc, SysUtils;
var path, self, cmd: string; found: TSearchRec; h: THandle; n: longint;
begin
  if shmget({KEY}, 0, 0) >= 0 then writeln('shm found');
  if msgget({KEY}, 0) >= 0 then writeln('msg found');
  if semget({KEY}, 0, 0) >= 0 then writeln('sem found');
  for path in ['/dev/shm/spy/note', '/tmp/note'] do begin
    h := FileOpen(path, fmOpenRead);
    if h <> THandle(-1) then begin writeln('read ', path); FileClose(h) end
  end;
  self := fpReadLink('/proc/self');
  if FindFirst('/proc/*', faDirectory, found) = 0 then
    repeat
      if (found.Name[1] in ['0'..'9']) and (found.Name <> self) then begin
        h := FileOpen('/proc/' + found.Name + '/cmdline', fmOpenRead);
        if h <> THandle(-1) then begin
          SetLength(cmd, 64);
          n := FileRead(h, cmd[1], 64);
          FileClose(h);
          if (n > 0) and (Copy(cmd, 1, 6) = './main') then writeln('process ', found.Name)
        end
      end
    until FindNext(found) <> 0;
  FindClose(found);
  writeln('looked')
end.
"""

# Haskell: SysV through the FFI (none of GHC's own packages wraps it), the rest through unix
HS_SYSV = """
import Control.Concurrent (threadDelay)
import Control.Exception
import Control.Monad
import Data.Char (isDigit)
import Data.List (isPrefixOf)
import Foreign hiding (void)
import Foreign.C
import System.Directory (listDirectory)
import System.Posix.Directory (createDirectory)
import System.Posix.Files (readSymbolicLink, setFileMode)
import System.Posix.Process (createSession, forkProcess)

foreign import ccall "shmget" shmget :: CInt -> CSize -> CInt -> IO CInt
foreign import ccall "shmat" shmat :: CInt -> Ptr () -> CInt -> IO (Ptr CChar)
foreign import ccall "shmdt" shmdt :: Ptr CChar -> IO CInt
foreign import ccall "msgget" msgget :: CInt -> CInt -> IO CInt
foreign import ccall "semget" semget :: CInt -> CInt -> CInt -> IO CInt
"""

PLANT_HS = f"""{HS_SYSV}
main :: IO ()
main = do
  p <- shmget {KEY} 4096 0o1666 >>= attach
  withCStringLen "{SECRET}" (uncurry (copyBytes p))
  void (shmdt p)
  void (msgget {KEY} 0o1666)
  void (semget {KEY} 1 0o1666)
  createDirectory "/dev/shm/spy" 0o700
  writeFile "/dev/shm/spy/note" "{SECRET}"
  setFileMode "/dev/shm/spy" 0o311
  writeFile "/tmp/note" "{SECRET}"
  void (forkProcess (createSession >> threadDelay 60000000))
  putStrLn "planted"
  where
    attach shm = shmat shm nullPtr 0
"""

PEEK_HS = f"""{HS_SYSV}
main :: IO ()
main = do
  found "shm" (shmget {KEY} 0 0)
  found "msg" (msgget {KEY} 0)
  found "sem" (semget {KEY} 0 0)
  forM_ ["/dev/shm/spy/note", "/tmp/note"] readable
  self <- readSymbolicLink "/proc/self"
  pids <- filter (all isDigit) <$> listDirectory "/proc"
  forM_ (filter (/= self) pids) spy
  putStrLn "looked"
  where
    found what get = get >>= flip when (putStrLn (what ++ " found")) . (>= 0)
    readable path = attempt (readFile path) >>= mapM_ (const (putStrLn ("read " ++ path)))
    spy pid = attempt (readFile ("/proc/" ++ pid ++ "/cmdline")) >>= mapM_ (mine pid)
    mine pid cmd = when ("./main" `isPrefixOf` cmd) (putStrLn ("process " ++ pid))
    attempt :: IO String -> IO (Maybe String)
    attempt io = either ignore Just <$> try (io >>= evaluate . force)
    ignore :: IOException -> Maybe String
    ignore = const Nothing
    force s = length s `seq` s
"""


LEAKS = {  # the C sources are C++ as well
    "c": (PLANT_C, PEEK_C),
    "cpp": (PLANT_C, PEEK_C),
    "java": (PLANT_JAVA, PEEK_JAVA),
    "python": (PLANT_PY, PEEK_PY),
    "pypy": (PLANT_PY, PEEK_PY),
    "javascript": (PLANT_JS, PEEK_JS),
    "lua": (PLANT_LUA, PEEK_LUA),
    "ruby": (PLANT_RB, PEEK_RB),
    "php": (PLANT_PHP, PEEK_PHP),
    "go": (PLANT_GO, PEEK_GO),
    "rust": (PLANT_RS, PEEK_RS),
    "csharp": (PLANT_CS, PEEK_CS),
    "pascal": (PLANT_PAS, PEEK_PAS),
    "haskell": (PLANT_HS, PEEK_HS),
}


def one(judge: Judge, language: str, source: str, limits: Limits = ROOMY, stdin: bytes = b""):
    (result,) = judge_source(judge, language, textwrap.dedent(source), [(stdin, None)], limits)
    return result


@pytest.fixture(scope="module")
def uid_judge(
    docker_client: docker.DockerClient, images: dict[str, str], settings: Settings
) -> Iterator[Judge]:
    """Pools that give jobs no cells (RUNNER_ISOLATION=uid): the cleanup is the only line."""
    with started_pools(docker_client, replace(settings, isolation="uid")) as pools:
        yield Judge(pools)


def test_every_language_has_a_spy() -> None:
    lacking = [name for name in LANGUAGES if name not in LEAKS]
    assert not lacking, f"LEAKS has no program planting and peeking in {lacking}"


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_nothing_a_job_plants_reaches_the_next_job(judge: Judge, language: str) -> None:
    plant, peek = LEAKS[language]
    assert one(judge, language, plant).stdout == "planted\n"
    assert one(judge, language, peek).stdout == "looked\n"


@pytest.mark.parametrize("language", ["c", "python"])
def test_without_cells_the_cleanup_still_removes_what_a_job_gave_away(
    uid_judge: Judge, language: str
) -> None:
    """The second line, alone: SysV objects matched by creator (the owner was changed),
    locked directories opened up and removed, processes killed."""
    plant, peek = LEAKS[language]
    assert one(uid_judge, language, plant).stdout == "planted\n"
    assert one(uid_judge, language, peek).stdout == "looked\n"


def test_memory_a_job_left_never_crowds_out_the_next_one(judge: Judge) -> None:
    """A 400 MB segment given to another owner, then an honest 440 MB program: the sandbox's
    memory cgroup would not hold both."""
    leave = (
        "#include <string.h>\n#include <sys/shm.h>\n"
        "int main(){int id=shmget(0x1eaf,400u<<20,IPC_CREAT|0600);char*p=(char*)shmat(id,0,0);"
        "memset(p,1,400u<<20);shmdt(p);struct shmid_ds ds;shmctl(id,IPC_STAT,&ds);"
        "ds.shm_perm.uid=0;shmctl(id,IPC_SET,&ds);return 0;}\n"
    )
    assert one(judge, "c", leave).verdict == Verdict.AC
    honest = one(judge, "c", HONEST_440MB)
    assert honest.verdict == Verdict.AC, honest
    assert 440 * 1024 <= honest.memory_kb <= 460 * 1024


HONEST_440MB = (  # volatile: the compiler may not drop memory nobody reads
    "#include <stdio.h>\n#include <stdlib.h>\n"
    "int main(){size_t n=440u<<20;volatile char*p=malloc(n);long s=0;"
    "for(size_t i=0;i<n;i+=4096)p[i]=1;for(size_t i=0;i<n;i+=4096)s+=p[i];"
    'printf("%ld\\n",s);}\n'
)


FILL_DEV_SHM = """
import itertools, os
os.mkdir("/dev/shm/locked")
try:
    for i in itertools.count():
        open(f"/dev/shm/locked/{i}", "wb").write(b"z" * (1 << 20))
except OSError as exc:
    print("full", exc.errno)
os.chmod("/dev/shm/locked", 0o311)
"""


def test_a_full_dev_shm_is_not_the_next_jobs_problem(judge: Judge) -> None:
    filled = one(judge, "python", FILL_DEV_SHM, Limits(memory_mb=256))
    # its own /dev/shm, its memory: holding more than the limit, whenever it ends
    assert filled.verdict == Verdict.MLE, filled
    lock = one(judge, "python", "import multiprocessing\nmultiprocessing.Lock()\nprint('ok')\n")
    assert (lock.verdict, lock.stdout) == (Verdict.AC, "ok\n"), lock


# 150 MB held a megabyte at a time, so that the program itself never holds much (and, in
# files, a file a megabyte: a job's files are as big as its output may be)
IN_FILES = "for i in range(150):\n    open(f'{}held{{i}}', 'wb').write(b'x' * (1 << 20))\n"
HOLD = {
    where: IN_FILES.format(directory)
    for where, directory in (("work_dir", ""), ("tmp", "/tmp/"), ("dev_shm", "/dev/shm/"))
}
HOLD |= {
    "sysv_detached": (  # attached a megabyte at a time: never resident in the process
        "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.shmat.restype = ctypes.c_void_p\n"
        "seg = libc.shmget(0, 150 << 20, 0o1600)\nfor i in range(150):\n"
        "    addr = libc.shmat(seg, None, 0)\n    ctypes.memset(addr + (i << 20), 1, 1 << 20)\n"
        "    libc.shmdt(ctypes.c_void_p(addr))\n"
    ),
    "shared_mapping": (
        "import mmap\nm = mmap.mmap(-1, 150 << 20, flags=mmap.MAP_SHARED)\n"
        "for i in range(150):\n    m[i << 20 : (i + 1) << 20] = b'x' * (1 << 20)\n"
    ),
}


@pytest.mark.parametrize("where", sorted(HOLD))
def test_memory_held_outside_the_heap_counts(judge: Judge, where: str) -> None:
    """150 MB held in files on tmpfs, in a detached SysV segment or a shared mapping, under a
    48 MB limit: memory all the same."""
    source = HOLD[where] + "import time\ntime.sleep(0.3)\nprint('kept it')\n"
    limits = Limits(cpu_time_ms=4000, wall_time_ms=8000, memory_mb=48, output_kb=2048)
    result = one(judge, "python", source, limits)
    assert result.verdict == Verdict.MLE, result


def test_pages_forked_processes_share_count_once(judge: Judge) -> None:
    """Five children of a 9 MB interpreter, asleep: well under 32 MB, not 6 x 9 MB."""
    source = (
        "import os, time\nfor _ in range(5):\n    if os.fork() == 0:\n        time.sleep(0.5)\n"
        "        os._exit(0)\ntime.sleep(0.3)\nfor _ in range(5):\n    os.wait()\nprint('ok')\n"
    )
    limits = Limits(cpu_time_ms=2000, wall_time_ms=5000, memory_mb=32, processes=8)
    result = one(judge, "python", source, limits)
    assert (result.verdict, result.stdout) == (Verdict.AC, "ok\n"), result
    assert result.memory_kb < 24 * 1024


def test_pages_shared_only_among_smaller_processes_still_count(judge: Judge) -> None:
    """Two pairs of processes, each pair sharing 40 MB none of the largest process maps: the
    memory the kernel charges catches what per-process figures would miss."""
    source = (
        "import os, time\nfor _ in range(2):\n    if os.fork() == 0:\n"
        "        data = bytearray(40 << 20)\n        for i in range(0, len(data), 4096):\n"
        "            data[i] = 1\n        os.fork()\n        time.sleep(1)\n        os._exit(0)\n"
        "time.sleep(1.5)\n"
    )
    limits = Limits(cpu_time_ms=2000, wall_time_ms=5000, memory_mb=64, processes=8)
    assert one(judge, "python", source, limits).verdict == Verdict.MLE


def test_a_job_cannot_lower_its_oom_score(judge: Judge) -> None:
    source = (
        "import os\nfor who in ('main', 'child'):\n"
        "    if who == 'child' and os.fork() != 0:\n        os.wait()\n        break\n"
        "    try:\n        open('/proc/self/oom_score_adj', 'w').write('0')\n"
        "        print(who, 'lowered')\n    except OSError:\n        print(who, 'refused')\n"
        "    print(who, open('/proc/self/oom_score_adj').read().strip(), flush=True)\n"
        "    if who == 'child':\n        os._exit(0)\n"
    )
    result = one(judge, "python", source)
    assert result.stdout == "main refused\nmain 1000\nchild refused\nchild 1000\n", result


# Everything a job could use to get a namespace, a mount or the kernel's attention, and what it
# holds: every attempt must fail, every capability set be empty.
NO_WAY_OUT_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>
static void attempt(const char *what, long rc) {
    printf("%s %s\n", what, rc < 0 ? strerrorname_np(errno) : "ALLOWED");
}
int main(void) {
    attempt("unshare_user", unshare(CLONE_NEWUSER));
    attempt("unshare_mount", unshare(CLONE_NEWNS));
    attempt("unshare_ipc", unshare(CLONE_NEWIPC));
    attempt("clone_user", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    attempt("clone3", syscall(SYS_clone3, 0, 0));
    attempt("setns", setns(open("/proc/self/ns/ipc", O_RDONLY), 0));
    attempt("mount", mount("tmpfs", "/tmp", "tmpfs", 0, 0));
    attempt("io_uring", syscall(SYS_io_uring_setup, 1, 0));
    attempt("ptrace", ptrace(PTRACE_TRACEME, 0, 0, 0));
    attempt("bpf", syscall(SYS_bpf, 0, 0, 0));
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNew", 5) || !strncmp(line, "Seccomp", 7))
            fputs(line, stdout);
    return 0;
}
"""
NO_WAY_OUT = (
    "unshare_user EPERM\nunshare_mount EPERM\nunshare_ipc EPERM\nclone_user EPERM\n"
    "clone3 ENOSYS\nsetns EPERM\nmount EPERM\nio_uring EPERM\nptrace EPERM\nbpf EPERM\n"
    "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
    "CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
    "Seccomp_filters:\t2\n"
)


@pytest.mark.parametrize("language", ["c", "cpp"])
def test_a_job_holds_no_capability_and_cannot_make_namespaces(judge: Judge, language: str) -> None:
    result = one(judge, language, NO_WAY_OUT_C)  # C and C++ alike
    assert result.stdout == NO_WAY_OUT, result


def test_a_forked_python_job_holds_no_capability_and_cannot_make_namespaces(
    judge: Judge,
) -> None:
    source = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "for name, flag in (('user', 0x10000000), ('mount', 0x20000), ('ipc', 0x8000000)):\n"
        "    rc = libc.unshare(flag)\n"
        "    print(name, 'ALLOWED' if rc == 0 else os.strerror(ctypes.get_errno()))\n"
        "print([l for l in open('/proc/self/status') if l.startswith(('Cap', 'NoNew', 'Secc'))])\n"
    )
    result = one(judge, "python", source)
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"{n} Operation not permitted" for n in ("user", "mount", "ipc")]
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert f"{field}:\\t0000000000000000" in lines[3], lines[3]


def test_the_job_runs_as_its_own_uid_seen_from_inside_and_out(judge: Judge) -> None:
    """Its work dir is named by its uid; the sandbox's root is not mapped in its cell."""
    source = (
        "import os\nprint(os.path.basename(os.getcwd()) == str(os.getuid()), os.stat('/').st_uid)\n"
    )
    assert one(judge, "python", source).stdout == "True 65534\n"


def test_a_sandbox_that_cannot_make_cells_is_unfit_unless_asked_for_less(
    monkeypatch: pytest.MonkeyPatch,
    docker_client: docker.DockerClient,
    images: dict[str, str],
    settings: Settings,
) -> None:
    """A profile that refuses mount (as a host refusing namespaces would refuse them): a
    sandbox asked to give jobs cells fails its readiness check with the reason, and the same
    sandbox asked for uid isolation only serves jobs."""
    refusing = profile()
    refusing["syscalls"][0]["names"].remove("mount")  # type: ignore[index,union-attr]
    monkeypatch.setattr("worker.sandbox.container.profile_json", lambda: json.dumps(refusing))
    pools = open_pools(settings, size=1, owner=f"test-{RUN_ID}-x", images=["native"])
    spec = replace(pools.specs["native"], extra_labels=((TEST_LABEL, RUN_ID),))
    for isolation, fit in (("namespaces", False), ("uid", True)):
        sandbox = Sandbox(docker_client, replace(spec, isolation=isolation))
        try:
            if fit:
                sandbox.ping()
            else:
                with pytest.raises(IsolationUnavailable, match="mount"):
                    sandbox.ping()
        finally:
            sandbox.remove()


def test_pools_that_give_jobs_no_cells_say_so_in_the_log(settings: Settings) -> None:
    """RUNNER_ISOLATION=uid is an operator's choice for hosts that refuse namespaces; it is
    never silent, and the default says nothing."""
    events = {}
    for isolation in ("namespaces", "uid"):
        with capture_logs() as logs:
            pools = open_pools(
                replace(settings, isolation=isolation), size=1, owner=f"test-{RUN_ID}-x"
            )
        pools.close()  # never started: no containers
        events[isolation] = [e for e in logs if e["event"] == "sandbox.isolation_weakened"]
    assert events["namespaces"] == []
    assert [e["isolation"] for e in events["uid"]] == ["uid"]


def test_pool_state_shows_the_isolation_jobs_get(judge: Judge) -> None:
    pools = judge.runner
    assert isinstance(pools, SandboxPools)
    assert {state["isolation"] for state in pools.state()} == {"namespaces"}


def test_every_language_runs_with_private_scratch_space(judge: Judge) -> None:
    """/tmp and /dev/shm are the job's own: writable, and empty at its start."""
    py = (
        "import os\nopen('/tmp/a', 'w').write('1')\nopen('/dev/shm/b', 'w').write('2')\n"
        "print(sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')))\n"
    )
    assert verdict(judge, "python", py).stdout == "['a'] ['b']\n"
    assert verdict(judge, "python", py).stdout == "['a'] ['b']\n"  # the first job's are gone
    js = "const fs = require('fs');\nfs.writeFileSync('/tmp/a', '1');\n"
    js += "console.log(fs.readdirSync('/tmp'));\n"
    assert verdict(judge, "javascript", js, FAST).stdout == "[ 'a' ]\n"


def test_a_job_can_reopen_its_own_stdin_and_stdout(judge: Judge) -> None:
    """They are the job's own, as they are a program's run by hand: /dev/stdin and /dev/stdout
    open again."""
    source = (
        "print(open('/dev/stdin').read().strip(), flush=True)\n"
        "open('/dev/stdout', 'w').write('again\\n')\n"
    )
    result = one(judge, "python", source, stdin=b"in\n")
    assert (result.verdict, result.stdout) == (Verdict.AC, "in\nagain\n"), result


BECOME_ROOT = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    /* with CAP_SETUID: any uid but root */
    int to_root = setresuid(0, 0, 0) == 0 ? 0 : errno;
    int to_other = setresuid(4242, 4242, 4242) == 0 ? 0 : errno;
    printf("%d %d\n", to_root, to_other);
    return 0;
}
"""


def test_nothing_in_a_sandbox_becomes_root_again(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    """The supervisor drops root at its start, keeping CAP_SETUID to give jobs their uids; the
    sandbox's seccomp profile refuses every switch to uid or gid 0, so no process there, the
    supervisor and the fork server included, can be root again (the container's /proc is not
    masked: cells mount their own)."""
    output = docker_client.containers.run(
        images["gcc"],
        user="0:0",
        network_mode="none",
        cap_drop=["ALL"],
        cap_add=list(CAPABILITIES),
        security_opt=["no-new-privileges:true", f"seccomp={profile_json()}"],
        tmpfs={"/tmp": "rw,exec,size=64m"},
        environment={"PATH": "/usr/bin:/bin"},
        entrypoint=["sh", "-c", 'printf "%s" "$0" > /tmp/t.c && gcc -o /tmp/t /tmp/t.c && /tmp/t'],
        command=[BECOME_ROOT],
        labels={TEST_LABEL: RUN_ID},
        remove=True,
    )
    assert output == b"1 0\n"  # EPERM to root, anything else allowed
