#!/bin/bash
# Usage: assemble-rootfs.sh ROOTFS PYTHON_VERSION LAYOUT
# Builds, under ROOTFS, the smallest file tree in which Debian's python runs every stdlib module
# we keep. LAYOUT says how the pure-Python stdlib is stored (image sizes for python3.11):
#   pyc     (default, 35.7 MB) sourceless legacy-layout .pyc on disk (compileall -b), no .py,
#           no __pycache__: smallest that imports at full speed; tracebacks into the stdlib
#           show file and line but not the source text;
#   zip     (29.2 MB) the same .pyc deflated in /usr/lib/pythonXY.zip, first on sys.path by
#           default; lib-dynload, os.pyc and dist-packages stay on disk (see below); about
#           0.25 ms slower per module imported (zipimport is pure Python and inflates);
#   source  (45.6 MB, over budget) .py plus unchecked-hash __pycache__ .pyc.
# Every .pyc is compiled at optimisation level 0, the level the interpreter loads by default:
# an -O/-OO .pyc would be ignored, and on a read-only root every import would then recompile.
set -euo pipefail
root=$1
ver=$2
layout=${3:-pyc}
py=python$ver
std=/usr/lib/$py
dst=$root$std
here=$(dirname "$0")

# /tmp is only a mount point: the sandbox mounts a tmpfs there (the root stays read-only).
mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/usr/share" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
cp -a "/usr/bin/$py" "$root/usr/bin/"
ln -sfn "$py" "$root/usr/bin/python3"
cp -a "$std" "$root/usr/lib/"

# Not runnable or not wanted in a sandbox: tests, GUI (no Tk in the image), pip bootstrap,
# lib2to3 (deprecated, needs its grammar on disk), build configuration, demo packages, C test
# modules. nis is dropped too: deprecated (removed in 3.13), useless without a network, and the
# only module that links Kerberos (about 2 MB of libraries). sitecustomize is Debian's hook
# into /etc/python3.x, which the image does not have.
rm -rf "$dst"/test "$dst"/idlelib "$dst"/tkinter "$dst"/turtledemo "$dst"/turtle.py \
       "$dst"/ensurepip "$dst"/lib2to3 "$dst"/config-"$ver"-* "$dst"/__phello__ \
       "$dst"/__hello__.py "$dst"/sitecustomize.py "$dst"/EXTERNALLY-MANAGED
find "$dst" -depth -name __pycache__ -type d -exec rm -rf {} +
find "$dst/lib-dynload" \( -name '_test*' -o -name '_xxtestfuzz.*' -o -name 'xxlimited*' \
     -o -name '_ctypes_test.*' -o -name '_tkinter.*' -o -name 'nis.*' \) -delete
if [ -d "$root/usr/lib/python3/dist-packages" ]; then
    rm -rf "$root/usr/lib/python3/dist-packages/bin"
fi

# Shared libraries of the interpreter and of every extension module (stdlib and pip-installed).
mapfile -t elves < <(find "$root/usr/lib" -name '*.so' -type f)
"$here/copy-libs.sh" "$root" "$root/usr/bin/$py" "${elves[@]}"

# Small runtime data that stdlib modules read from disk: the C.UTF-8 locale (LANG and
# locale.setlocale), terminfo entries (curses), and zone data (zoneinfo; "right/" is the
# leap-second variant nobody asks for).
mkdir -p "$root/usr/lib/locale"
cp -a /usr/lib/locale/C.utf8 "$root/usr/lib/locale/"
cp -a /usr/lib/terminfo "$root/usr/lib/"
cp -a /usr/share/zoneinfo "$root/usr/share/"
rm -rf "$root/usr/share/zoneinfo/right"

# Byte-compile at level 0 with the builder's identical interpreter; -s/-p make the recorded
# file names the in-image paths rather than ROOTFS ones. pip-installed packages keep their
# sources (some read them, e.g. through inspect), with unchecked-hash .pyc that are never
# revalidated, so they cannot go stale when file times change.
compile() { "$py" -m compileall -q -j 0 -s "$root" -p / "$@"; }
site=$root/usr/lib/python3/dist-packages
if [ -d "$site" ]; then
    compile --invalidation-mode unchecked-hash "$site"
fi
case $layout in
    source)
        compile --invalidation-mode unchecked-hash "$dst"
        ;;
    pyc|zip)
        compile -b "$dst"
        find "$dst" -name '*.py' \( -type f -o -type l \) -delete
        ;;
    *) echo "unknown layout $layout" >&2; exit 1 ;;
esac
if [ "$layout" = zip ]; then
    # os.pyc stays on disk: getpath looks for lib/pythonX.Y/os.py[c] to find sys.prefix and
    # warns on every start without it. lib-dynload cannot be imported from a zip.
    "$py" - "$dst" "$root/usr/lib/python${ver/./}.zip" <<'PY'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d != "lib-dynload")
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)
            if rel in ("os.pyc", "LICENSE.txt"):
                continue
            zf.write(path, rel)
            os.unlink(path)
PY
    find "$dst" -mindepth 1 -depth -type d -empty -delete
fi
