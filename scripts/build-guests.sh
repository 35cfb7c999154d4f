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

# The SEV-SNP demo guest (guests/snp): firmware-shaped — it runs from the x86 reset vector —,
# its entry in assembly, the rest freestanding C with guests/lib's cryptography, linked to run at
# 0xffff0000 (guests/snp/link.ld): build/guests/snp_demo.bin and .sym. The host adds its SEV
# metadata and OVMF footer table (scripts/guest-images.ts), so `sev snp measure` can measure it.
cflags="-std=c11 -O2 -ffreestanding -fno-builtin -nostdlib -fpie -fno-stack-protector -mno-red-zone \
  -mgeneral-regs-only -fno-asynchronous-unwind-tables -fcf-protection=none -Wall -Wextra -Werror"
objs="$out/snp_entry.o"
cc -c -o "$out/snp_entry.o" guests/snp/entry.S
for src in guests/snp/main.c guests/lib/*.c; do
  obj="$out/snp_$(basename "$src" .c).o"
  cc $cflags -c -o "$obj" "$src"
  objs="$objs $obj"
done
ld -m elf_x86_64 -static -nostdlib -z norelro --no-warn-rwx-segments -T guests/snp/link.ld -o "$out/snp_demo.elf" $objs
objcopy -O binary "$out/snp_demo.elf" "$out/snp_demo.bin"
nm "$out/snp_demo.elf" | awk '$2 == "T" && $3 !~ /^_/ { print $3, "0x" $1 }' > "$out/snp_demo.sym"
rm -f $objs "$out/snp_demo.elf"
