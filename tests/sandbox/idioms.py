"""What contestants' Python programs do, written here: the corpus the fork server must run
exactly as ``python3 main.py`` does (tests/sandbox/test_forkserver.py). Each entry is a
program and its stdin."""

from __future__ import annotations

NUMBERS = b"5\n3 1 4 1 5\n"

# PyRival's FastIO, the template most competitive Python programs start with: sys.stdout and
# sys.stdin replaced by buffered wrappers that write with os.write when flushed.
FASTIO = """
import os, sys
from io import BytesIO, IOBase
BUFSIZE = 8192
class FastIO(IOBase):
    newlines = 0
    def __init__(self, file):
        self._fd = file.fileno()
        self.buffer = BytesIO()
        self.writable = "x" in file.mode or "r" not in file.mode
        self.write = self.buffer.write if self.writable else None
    def read(self):
        while True:
            b = os.read(self._fd, max(os.fstat(self._fd).st_size, BUFSIZE))
            if not b:
                break
            ptr = self.buffer.tell()
            self.buffer.seek(0, 2), self.buffer.write(b), self.buffer.seek(ptr)
        self.newlines = 0
        return self.buffer.read()
    def readline(self):
        while self.newlines == 0:
            b = os.read(self._fd, max(os.fstat(self._fd).st_size, BUFSIZE))
            self.newlines = b.count(b"\\n") + (not b)
            ptr = self.buffer.tell()
            self.buffer.seek(0, 2), self.buffer.write(b), self.buffer.seek(ptr)
        self.newlines -= 1
        return self.buffer.readline()
    def flush(self):
        if self.writable:
            os.write(self._fd, self.buffer.getvalue())
            self.buffer.truncate(0), self.buffer.seek(0)
class IOWrapper(IOBase):
    def __init__(self, file):
        self.buffer = FastIO(file)
        self.flush = self.buffer.flush
        self.writable = self.buffer.writable
        self.write = lambda s: self.buffer.write(s.encode("ascii"))
        self.read = lambda: self.buffer.read().decode("ascii")
        self.readline = lambda: self.buffer.readline().decode("ascii")
sys.stdin, sys.stdout = IOWrapper(sys.stdin), IOWrapper(sys.stdout)
input = lambda: sys.stdin.readline().rstrip("\\r\\n")
"""

IDIOMS: dict[str, tuple[str, bytes]] = {
    "fastio": (
        FASTIO + "n = int(input())\na = list(map(int, input().split()))\nprint(sum(a), n)\n",
        NUMBERS,
    ),
    "fastio_main_function": (
        FASTIO
        + "def main():\n    n = int(input())\n    for x in input().split():\n"
        + "        print(int(x) * 2)\nif __name__ == '__main__':\n    main()\n",
        NUMBERS,
    ),
    "fastio_then_exit": (FASTIO + "print('partial')\nsys.exit(0)\n", b""),
    # the interpreter flushes sys.stdout once the script has run, before atexit callbacks
    "fastio_then_atexit_write": (
        FASTIO + "import atexit\natexit.register(os.write, 1, b'from atexit\\n')\n"
        "print('buffered by FastIO')\n",
        b"",
    ),
    "os_write_output": (
        "import os, sys\nout = []\nfor i in range(1000):\n    out.append(str(i))\n"
        "os.write(1, '\\n'.join(out).encode() + b'\\n')\nprint('after', flush=False)\n",
        b"",
    ),
    "atexit_stringio": (
        "import atexit, io, sys\nsys.stdout = io.StringIO()\n"
        "atexit.register(lambda: sys.__stdout__.write(sys.stdout.getvalue()))\n"
        "for i in range(100):\n    print(i)\n",
        b"",
    ),
    "stringio_swap_back": (
        "import io, sys\nbuf = io.StringIO()\nsys.stdout = buf\nprint('hidden', 1)\n"
        "sys.stdout = sys.__stdout__\nprint(buf.getvalue(), end='')\n",
        b"",
    ),
    "writer_without_closed": (
        "import os, sys\nclass Out:\n    def write(self, s):\n        os.write(1, s.encode())\n"
        "    def flush(self):\n        pass\nsys.stdout = Out()\nprint('via Out')\n",
        b"",
    ),
    "writer_without_flush": (
        "import os, sys\nclass Out:\n    def write(self, s):\n        os.write(1, s.encode())\n"
        "sys.stdout = Out()\nprint('no flush method')\n",
        b"",
    ),
    "buffer_write_no_flush": (
        "import sys\nsys.stdout.buffer.write(b'x' * 200000)\nsys.stdout.buffer.write(b'\\n')\n",
        b"",
    ),
    "never_flushed_prints": (
        "for i in range(30000):\n    print(i, end=' ')\nprint()\n",
        b"",
    ),
    "reopened_stdout": (
        "import sys\nsys.stdout = open(1, 'w', buffering=1 << 20, closefd=False)\n"
        "print('big buffer, never flushed')\n",
        b"",
    ),
    "readline_input": (
        "import sys\ninput = sys.stdin.readline\nn = int(input())\n"
        "print(sorted(map(int, input().split())))\n",
        NUMBERS,
    ),
    "read_everything": (
        "import sys\ndata = sys.stdin.buffer.read().split()\nprint(sum(map(int, data[1:])))\n"
        "print(open(0).read() == '')\n",
        NUMBERS,
    ),
    "recursion_default_limit": (
        "import sys\ndef f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\n"
        "print(f(996))\ndepth = 0\ndef g():\n    global depth\n    depth += 1\n    g()\n"
        "try:\n    g()\nexcept RecursionError:\n    print('deepest', depth)\n",
        b"",
    ),
    "recursion_error_traceback": (
        "def f(n):\n    return f(n + 1)\nf(0)\n",
        b"",
    ),
    "setrecursionlimit_deep": (
        "import sys\nsys.setrecursionlimit(10 ** 6)\n"
        "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\n"
        "print(f(50000), sys.getrecursionlimit())\n",
        b"",
    ),
    "thread_stack_size_trick": (
        "import sys, threading\nsys.setrecursionlimit(10 ** 6)\nthreading.stack_size(1 << 26)\n"
        "def dfs(n):\n    return 0 if n == 0 else 1 + dfs(n - 1)\n"
        "def main():\n    print(dfs(100000))\n"
        "t = threading.Thread(target=main)\nt.start()\nt.join()\n",
        b"",
    ),
    # the same without stack_size: new threads get the default stack, which glibc sizes from
    # RLIMIT_STACK (the job's memory limit) when the process starts; recursion through C
    # (a generator in sum(), an lru_cache) needs the C stack, some 400 bytes a level
    "thread_deep_recursion": (
        "import sys, threading\nfrom functools import lru_cache\nsys.setrecursionlimit(10 ** 6)\n"
        "@lru_cache(None)\ndef depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "def dfs(v, adj, seen):\n    seen[v] = True\n"
        "    return 1 + sum(dfs(w, adj, seen) for w in adj[v] if not seen[w])\n"
        "def main():\n    n = 50000\n    print(depth(n))\n"
        "    adj = [[i + 1] if i + 1 < n else [] for i in range(n)]\n"
        "    print(dfs(0, adj, [False] * n))\n"
        "threading.Thread(target=main).start()\n",
        b"",
    ),
    "raise_stack_limit": (
        "import resource\ntry:\n    resource.setrlimit(resource.RLIMIT_STACK, "
        "(resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n    print('raised')\n"
        "except ValueError as exc:\n    print('refused', exc)\n",
        b"",
    ),
    "exit_huge": ("import sys\nsys.exit(2 ** 64)\n", b""),
    "exit_256": ("import sys\nsys.exit(256)\n", b""),
    "exit_minus_one": ("import sys\nsys.exit(-1)\n", b""),
    "exit_2_31": ("import sys\nsys.exit(2 ** 31)\n", b""),
    "exit_true": ("import sys\nprint('t')\nsys.exit(True)\n", b""),
    "exit_float": ("import sys\nsys.exit(1.5)\n", b""),
    "exit_list": ("import sys\nsys.exit([1, 2])\n", b""),
    "exit_empty_string": ("import sys\nsys.exit('')\n", b""),
    "exit_builtin": ("print('x', end='')\nexit(3)\n", b""),
    "quit_builtin": ("print('y')\nquit()\n", b""),
    "exit_from_main": ("import sys\ndef main():\n    print('m')\nsys.exit(main())\n", b""),
    "exit_in_atexit": (
        "import atexit, sys\natexit.register(lambda: sys.exit(4))\nprint('main')\n",
        b"",
    ),
    "del_at_exit": (
        "class Report:\n    def __del__(self):\n        print('report', total)\n"
        "total = 0\nr = Report()\nfor i in range(10):\n    total += i\n",
        b"",
    ),
    "del_raises_at_exit": (
        "class Bad:\n    def __del__(self):\n        raise ValueError('in del')\nb = Bad()\n"
        "print('end')\n",
        b"",
    ),
    "stdout_reconfigured": (
        "import sys\nsys.stdout.reconfigure(line_buffering=False, write_through=False)\n"
        "print('reconfigured')\n",
        b"",
    ),
    "error_after_output": (
        "import sys\nprint('partial answer')\nprint('debug', file=sys.stderr)\n[][1]\n",
        b"",
    ),
    "os_read_input": (
        "import os\ndata = os.read(0, 1 << 16).split()\nprint(max(map(int, data)))\n",
        NUMBERS,
    ),
}
