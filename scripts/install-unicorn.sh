#!/usr/bin/env bash
# Installs Unicorn >= 2.1 (libunicorn-dev), the CPU emulator the software KVM (sev-emu --kvm soft)
# runs guests on. Idempotent: does nothing when a usable version is installed.
#  - where the distribution's own package is >= 2.1 (Debian 13+, Ubuntu 24.10+): apt-get install it;
#  - on Debian 12, whose 2.0.1 cannot run the software KVM (no page-table translation, no TLB hook,
#    no long mode from 16-bit code), trixie's libunicorn2t64 + libunicorn-dev (they need only
#    libc6 >= 2.34) are fetched through a private apt configuration built from this machine's own
#    sources list. The system's sources are not changed; an old libunicorn2 is replaced.
# Needs root (or sudo). Prints what it did.
set -euo pipefail

MIN_MAJOR=2 MIN_MINOR=1
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

installed_version() {
  dpkg-query -W -f='${Status} ${Version}\n' libunicorn-dev 2>/dev/null | awk '$3 == "installed" { print $4 }'
}
usable() { # version string -> true when >= 2.1
  local v="${1%%-*}" major minor
  major="${v%%.*}"; minor="${v#*.}"; minor="${minor%%.*}"
  [ -n "$major" ] && [ "$major" -gt "$MIN_MAJOR" ] 2>/dev/null && return 0
  [ "$major" = "$MIN_MAJOR" ] && [ "${minor:-0}" -ge "$MIN_MINOR" ] 2>/dev/null
}

have="$(installed_version || true)"
if [ -n "$have" ] && usable "$have" && [ -f /usr/include/unicorn/unicorn.h ]; then
  echo "install-unicorn: libunicorn-dev $have is installed (>= $MIN_MAJOR.$MIN_MINOR); nothing to do"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-unicorn: no apt-get here; install Unicorn >= $MIN_MAJOR.$MIN_MINOR (headers + library) with your package manager" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
candidate="$(apt-cache policy libunicorn-dev 2>/dev/null | awk '/Candidate:/ { print $2 }')"
if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && usable "$candidate"; then
  $SUDO apt-get install -y -qq libunicorn-dev
  echo "install-unicorn: installed the distribution's libunicorn-dev $candidate"
  exit 0
fi

# The distribution's version is too old (or absent): take Debian trixie's through a private apt
# configuration that reuses this machine's archive (mirror, keyring) with trixie as the suite.
. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != "debian" ] && [ "${ID_LIKE:-}" != "debian" ]; then
  echo "install-unicorn: ${PRETTY_NAME:-this system} offers libunicorn-dev ${candidate:-none}; Unicorn >= $MIN_MAJOR.$MIN_MINOR is needed — install it from source or a newer release" >&2
  exit 1
fi
. "$(dirname "$0")/private-apt.sh"
private_apt trixie
work="$private_apt_dir"
(cd "$work" && $SUDO apt-get "${private_apt_opts[@]}" download -qq libunicorn2t64 libunicorn-dev)
debs=("$work"/libunicorn2t64_*.deb "$work"/libunicorn-dev_*.deb)
if dpkg-query -W -f='${Status}' libunicorn2 2>/dev/null | grep -q 'install ok installed'; then
  $SUDO dpkg -r libunicorn-dev >/dev/null 2>&1 || true
  $SUDO dpkg -r libunicorn2 >/dev/null
  echo "install-unicorn: removed the old libunicorn2"
fi
$SUDO dpkg -i "${debs[@]}" >/dev/null
echo "install-unicorn: installed trixie's libunicorn2t64 and libunicorn-dev $(installed_version) from $private_apt_mirror (the system's apt sources are unchanged)"
