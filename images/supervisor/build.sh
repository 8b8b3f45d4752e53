#!/bin/sh
# How the sandbox supervisor is compiled, in one place: images/supervisor/Dockerfile and the
# benchmark's baseline (images/baseline/Dockerfile) both run this. Every C file next to this
# script goes into one static binary (it must run in FROM-scratch images whatever their libc),
# except hello.c, the dynamic probe the supervisor image builds on its own; so a new source
# file is compiled in without editing either Dockerfile.
# Usage: sh build.sh OUTPUT
set -eu
out="${1:?usage: build.sh OUTPUT}"
case "$out" in /*) ;; *) out="$(pwd)/$out" ;; esac
cd "$(dirname "$0")"
set --
for source in *.c; do
  [ "$source" = hello.c ] || set -- "$@" "$source"
done
[ -e "${1:-}" ] || { echo "build.sh: no supervisor sources in $(pwd)" >&2; exit 1; }
exec gcc -O2 -static -s -Wall -Wextra -o "$out" "$@"
