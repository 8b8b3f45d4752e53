"""Import every stdlib module the image should have; fail on anything missing or recompiled.

Run by the Dockerfile against the assembled root (chroot, read-only in spirit: nothing is
written) and usable against the image itself:
    docker run --rm -i --read-only --network none --entrypoint /usr/bin/python3 IMAGE - < this
Exits non-zero listing the modules that did not import, or that were compiled from source at
import time (which on a read-only root would happen on every run).
"""

import importlib
import importlib._bootstrap_external as bx
import sys

compiled = []
_source_to_code = bx.SourceLoader.source_to_code


def _record(self, data, path, *args, **kwargs):
    compiled.append(path)
    return _source_to_code(self, data, path, *args, **kwargs)


bx.SourceLoader.source_to_code = _record

# Removed from the image on purpose, or never built for Linux / by Debian's python3.x packages.
ABSENT = {
    "test",
    "idlelib",
    "tkinter",
    "_tkinter",
    "turtle",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "__phello__",
    "nis",
    "_gdbm",
    "msvcrt",
    "winreg",
    "winsound",
    "nt",
    "_winapi",
    "_msi",
    "msilib",
    "_overlapped",
    "_scproxy",
    "_wmi",
}
# Importing these has side effects (opening a browser, printing); they only need to exist.
NO_IMPORT = {"antigravity", "this", "__hello__"}

REQUIRED = [
    "json",
    "sqlite3",
    "decimal",
    "ctypes",
    "hashlib",
    "zlib",
    "bz2",
    "lzma",
    "asyncio",
    "fractions",
    "heapq",
    "ssl",
    "csv",
    "re",
    "datetime",
    "collections",
    "itertools",
    "functools",
    "math",
    "random",
    "statistics",
    "unittest",
    "multiprocessing",
    "curses",
    "readline",
    "dbm",
    "dbm.ndbm",
    "dbm.dumb",
    "uuid",
    "zoneinfo",
    "xml.etree.ElementTree",
    "xml.dom.minidom",
    "email",
    "http.client",
    "concurrent.futures",
    "typing",
    "dataclasses",
    "bisect",
    "array",
    "struct",
    "pickle",
    "io",
    "string",
    "textwrap",
    "operator",
    "copy",
    "pprint",
    "enum",
    "numbers",
    "cmath",
    "queue",
    "threading",
    "subprocess",
    "tempfile",
    "pathlib",
    "sys",
    "os",
    "time",
    "calendar",
    "locale",
    "gettext",
    "argparse",
    "logging",
    "doctest",
    "pydoc",
    "sqlite3.dump",
    "curses.panel",
    "ctypes.util",
    "encodings.idna",
    "_decimal",
    "_ctypes",
    "_hashlib",
    "_ssl",
    "_sqlite3",
    "_curses",
    "_dbm",
    "_lzma",
    "_bz2",
    "_uuid",
    "_zoneinfo",
    "_multiprocessing",
    "_posixshmem",
    "mmap",
    "resource",
    "termios",
]

failed = {}
names = sorted((set(sys.stdlib_module_names) - ABSENT - NO_IMPORT) | set(REQUIRED))
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"

# Data the image ships for these modules.
import locale  # noqa: E402
import zoneinfo  # noqa: E402

try:
    locale.setlocale(locale.LC_ALL, "")
    zoneinfo.ZoneInfo("Europe/Paris")
except Exception as exc:
    failed["<runtime data>"] = f"{type(exc).__name__}: {exc}"

for name, why in sorted(failed.items()):
    print(f"FAILED {name}: {why}")
for path in compiled:
    print(f"COMPILED {path}")
print(
    f"{len(names) - len(failed)} modules imported, {len(failed)} failed, "
    f"{len(compiled)} compiled from source"
)
sys.exit(1 if failed or compiled else 0)
