#!/bin/sh
# Assembles the test and demo guests (guests/*.S) into flat binaries loaded at guest-physical
# 0x1000: build/guests/NAME.bin, plus NAME.sym with the addresses of their global labels.
# Needs the toolchain node-gyp already uses (cc, ld, objcopy, nm from binutils).
set -e
cd "$(dirname "$0")/.."
out=build/guests
mkdir -p "$out"
for src in guests/*.S; do
  name=$(basename "$src" .S)
  cc -c -o "$out/$name.o" "$src"
  ld -m elf_x86_64 -Ttext=0x1000 -e start -o "$out/$name.elf" "$out/$name.o"
  objcopy -O binary -j .text "$out/$name.elf" "$out/$name.bin"
  nm "$out/$name.elf" | awk '$2 == "T" && $3 !~ /^_/ { print $3, "0x" $1 }' > "$out/$name.sym"
  rm -f "$out/$name.o" "$out/$name.elf"
done
