"""Import the standard library a contestant uses; fail on a module missing or compiled.

Run by the Dockerfile in a chroot of the assembled root as the sandbox user: a module whose
bytecode is missing or stale would be compiled at every import on the read-only root. The chroot
has no /proc and no /dev (the sandbox has both): multiprocessing, which reads /dev/urandom as
it loads, is imported by the image tests instead.
"""

import importlib._bootstrap_external as bx
import sys

compiled = []
_source_to_code = bx.SourceLoader.source_to_code


def _record(self, data, path, *args, **kwargs):
    compiled.append(path)
    return _source_to_code(self, data, path, *args, **kwargs)


bx.SourceLoader.source_to_code = _record

REQUIRED = [
    "array", "bisect", "bz2", "collections", "csv", "ctypes", "curses", "dataclasses",
    "datetime", "decimal", "fractions", "functools", "grp", "hashlib", "heapq", "io",
    "itertools", "json", "lzma", "math", "operator", "os", "pickle", "pwd",
    "random", "re", "readline", "resource", "select", "signal", "socket", "sqlite3", "ssl",
    "statistics", "string", "struct", "subprocess", "threading", "traceback", "typing",
    "unittest", "zlib",
]  # fmt: skip
missing = []
for name in REQUIRED:
    try:
        __import__(name)
    except ImportError as exc:
        missing.append(f"{name}: {exc}")
# hashlib's blake2 and sha3 are cffi extensions of their own, loaded on first use
import hashlib  # noqa: E402

hashlib.blake2b(b"x").hexdigest()
hashlib.sha3_256(b"x").hexdigest()
if missing or compiled:
    sys.exit(f"missing: {missing}; compiled at import: {compiled}")
