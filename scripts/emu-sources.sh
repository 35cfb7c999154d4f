#!/bin/sh
# For binding.gyp: the emulator's sources and defines. The software KVM (native/emu/softkvm)
# needs Unicorn's headers (libunicorn-dev >= 2.1, scripts/install-unicorn.sh); without them the
# emulator is built without it and says so when `--kvm soft` is asked for.
cd "$(dirname "$0")/.." || exit 1
if echo '#include <unicorn/unicorn.h>' | ${CXX:-c++} -x c++ -fsyntax-only - >/dev/null 2>&1; then
  softkvm=1
else
  softkvm=0
fi
case "$1" in
  sources)
    ls -1 native/emu/*.cc
    [ "$softkvm" = 1 ] && ls -1 native/emu/softkvm/*.cc
    ;;
  defines)
    echo "SEVEMU_SOFTKVM=$softkvm"
    ;;
esac
exit 0
