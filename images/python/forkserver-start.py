"""What the supervisor starts as ``python3 /opt/runner/forkserver.py``: the fork server
(images/python/forkserver.py, which says what it does), compiled when the image was built
(forkserver.pyc), run here as this very module, as if its source were this file.

Why not the source itself: an interpreter compiles the script it is started with, and the
compiler's memory stays in its heap (freed, but in pages it keeps): about 0.9 MB for the
server's source, which every job forked from it would inherit and count as its own. Only these
few lines are compiled at start; the rest is loaded as the interpreter loads its standard
library. Nothing is imported that a fresh interpreter has not.
"""

import marshal
import sys

with open(__file__ + "c", "rb") as compiled:
    data = compiled.read()
if data[:4] != sys.modules["_frozen_importlib_external"].MAGIC_NUMBER:
    sys.exit(f"{__file__}c was compiled for another Python")
server = marshal.loads(memoryview(data)[16:])  # after the .pyc header
del compiled, data
exec(server)
