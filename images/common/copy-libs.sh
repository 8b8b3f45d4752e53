#!/bin/bash
# Usage: copy-libs.sh ROOTFS ELF...
# Copies into ROOTFS every shared library that ldd names for each ELF, and the dynamic loader,
# so that a FROM-scratch image can run them. Each library lands in its real directory under the
# name ldd gives (its soname), so no symlink chain is needed; the merged-/usr links (/lib, /lib64,
# /bin, /sbin) are recreated as on the builder, because binaries hard-code /lib64/ld-linux*.
# A library that ldd cannot find fails the build instead of failing later at run time.
set -euo pipefail
root=$1
shift
for top in bin sbin lib lib64; do
    if [ -L "/$top" ] && [ ! -e "$root/$top" ]; then
        mkdir -p "$root/$(readlink -f "/$top")"
        ln -s "$(readlink "/$top")" "$root/$top"
    fi
done
for elf in "$@"; do
    if ! out=$(ldd "$elf" 2>&1); then
        case $out in
            *"not a dynamic executable"*) continue ;;
            *) printf '%s: %s\n' "$elf" "$out" >&2; exit 1 ;;
        esac
    fi
    case $out in
        *"statically linked"*) continue ;;
        *"not found"*) printf '%s: missing libraries:\n%s\n' "$elf" "$out" >&2; exit 1 ;;
    esac
    printf '%s\n' "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u | while read -r lib; do
    dir=$(readlink -f "$(dirname "$lib")")
    mkdir -p "$root$dir"
    cp -L "$lib" "$root$dir/${lib##*/}"
done
