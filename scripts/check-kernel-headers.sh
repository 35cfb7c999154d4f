#!/usr/bin/env bash
# Compiles the project's native code (addon, emulator, software KVM, C test clients) against the
# newest kernel UAPI headers Debian has (sid's linux-libc-dev), fetched into a temporary directory
# — not installed. The project carries its own UAPI definitions so it builds on old headers; this
# checks it still builds where the system's headers are newer and define some of the same names
# (6.10+ <linux/kvm.h> made KVM_X86_SEV_VM and friends macros). Syntax only: nothing is linked.
# Exit 0 when everything compiles, 1 when something does not, 2 when the headers cannot be fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

. scripts/private-apt.sh
if ! command -v apt-get >/dev/null || ! private_apt sid 2>/dev/null; then
  echo "check-kernel-headers: cannot reach a Debian archive for sid's linux-libc-dev" >&2
  exit 2
fi
(cd "$private_apt_dir" && $SUDO apt-get "${private_apt_opts[@]}" download -qq linux-libc-dev 2>/dev/null) || {
  echo "check-kernel-headers: could not download linux-libc-dev" >&2
  exit 2
}
deb=("$private_apt_dir"/linux-libc-dev_*.deb)
dpkg-deb -x "${deb[0]}" "$private_apt_dir/root"
inc="$private_apt_dir/root/usr/include"
version="$(basename "${deb[0]}" | cut -d_ -f2)"
headers=(-isystem "$inc/x86_64-linux-gnu" -isystem "$inc")
napi="$(node -p "require('node-addon-api').include_dir")"
node_inc="$(dirname "$(command -v node)")/../include/node"
[ -f "$node_inc/node_api.h" ] || node_inc=/usr/include/node

failed=0 n=0
check() { # compiler flags... file
  local file="${*: -1}"
  n=$((n + 1))
  if ! "$@" 2>"$private_apt_dir/err"; then
    failed=$((failed + 1))
    echo "check-kernel-headers: $file does not compile against linux-libc-dev $version:"
    grep -m5 'error' "$private_apt_dir/err" | sed 's/^/  /'
  fi
}
for f in native/addon/*.cc native/emu/*.cc native/emu/softkvm/*.cc; do
  check g++ -std=c++17 -fsyntax-only "${headers[@]}" -I native -I native/emu -I "$napi" -I "$node_inc" "$f"
done
for f in test/c/*.c test/c/conformance/*.c bench/*.c; do
  [ -f "$f" ] && check cc -std=c11 -D_GNU_SOURCE -fsyntax-only "${headers[@]}" "$f"
done
echo "check-kernel-headers: $((n - failed)) of $n files compile against linux-libc-dev $version"
[ "$failed" -eq 0 ]
