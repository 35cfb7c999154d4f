#!/usr/bin/env bash
# `npm run test:sanitize [-- --short]`: the addon and the emulator built with AddressSanitizer and
# UndefinedBehaviorSanitizer, in a build directory of their own (build-sanitize/; build/ stays the
# normal build), and the native suites and the C clients run on them. Any sanitizer report fails:
# UBSan halts on the first error, and every report (ASan, UBSan, LeakSanitizer) is also written to
# a log file, so one in a child process whose exit status a test tolerates fails the run as well.
#
#   --short   the subset CI runs (a few minutes on 2 cores); default: every native suite and client.
#
# Node itself is not instrumented: the ASan runtime is preloaded into it (SEV_EMU_PRELOAD: `sev-emu
# run` puts it in front of the emulator library, also for children that drop LD_PRELOAD), and leak checking
# is off in node processes (node leaves its heap to the OS at exit). The C clients are built with
# the sanitizers too and run with leak checking on: their leaks and the emulator's are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

mode=full
for a in "$@"; do
  case "$a" in
    --short) mode=short ;;
    --full) mode=full ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test:sanitize: unknown option $a" >&2; exit 2 ;;
  esac
done

SAN=(-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1)
OUT=$ROOT/build-sanitize
TREE=$OUT/tree
LOGS=$OUT/reports
start=$(date +%s)

libasan=$(${CC:-cc} -print-file-name=libasan.so)
if [ ! -e "$libasan" ] || [ "$libasan" = libasan.so ]; then
  echo "test:sanitize: the compiler has no AddressSanitizer runtime (libasan.so; Debian: libasan8 comes with gcc)" >&2
  exit 2
fi
libasan=$(readlink -f "$libasan")

# --- build -------------------------------------------------------------------------------------
# node-gyp builds ./build of the directory it runs in: a tree of links to the sources.
mkdir -p "$TREE"
for f in binding.gyp native scripts node_modules; do ln -sfn "$ROOT/$f" "$TREE/$f"; done
ls build/guests/*.bin >/dev/null 2>&1 || sh scripts/build-guests.sh
[ -f dist/lib/index.js ] || npx tsc -p .
echo "test:sanitize: building the addon and the emulator with ${SAN[*]} in $TREE/build"
(
  cd "$TREE"
  export CFLAGS="${SAN[*]}" CXXFLAGS="${SAN[*]}" LDFLAGS="-fsanitize=address,undefined"
  # configure + build (not rebuild): make recompiles only what changed.
  npx node-gyp configure >"$OUT/configure.log" 2>&1 || { cat "$OUT/configure.log"; exit 1; }
  npx node-gyp build -j 2 >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
)
ADDON=$TREE/build/Release/sev_addon.node
EMU=$TREE/build/Release/sevemu.so
[ -f "$EMU" ] || EMU=$TREE/build/Release/lib.target/sevemu.so
for f in "$ADDON" "$EMU"; do
  [ -f "$f" ] || { echo "test:sanitize: $f was not built" >&2; exit 1; }
done
built=$(date +%s)
echo "test:sanitize: built in $((built - start)) s"

# --- run ---------------------------------------------------------------------------------------
rm -rf "$LOGS"
mkdir -p "$LOGS"
export SEV_ADDON=$ADDON SEV_EMU_LIBRARY=$EMU SEV_EMU_PRELOAD=$libasan
# The software KVM whatever the host has: it is most of the emulator's code, so it is what the
# sanitizers must see (with the host's /dev/kvm, guests would run in the real kernel instead).
export SEV_EMU_KVM=soft
# Sanitizer reports go to files (LOGS/asan.PID, LOGS/ubsan.PID) as well as failing the process.
asan_common="log_path=$LOGS/asan:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0:check_initialization_order=1:strict_init_order=1"
ASAN_NODE="$asan_common:detect_leaks=0"
ASAN_CLIENT="$asan_common:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$LOGS/ubsan"
export LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan-suppressions.txt:print_suppressions=0"
export SEV_FUZZ_RUNS=${SEV_FUZZ_RUNS:-50}
failures=()

# The native suites, in node under the emulator (sev-emu run adds the ASan runtime, then the library).
if [ "$mode" = short ]; then
  # Full mode only: c-client and conformance (the C programs below, unsanitized), processes
  # (~150 s of node processes under ASan; sev_stress below covers threads x processes).
  specs=(platform/platform platform/ownership
         kvm/api kvm/memory kvm/run kvm/sev-machine kvm/hostile launch/launch launch/snp-guest)
else
  specs=(platform/platform platform/ownership platform/processes platform/c-client platform/conformance
         platform/cli platform/emulated-cpu kvm/api kvm/memory kvm/run kvm/sev-machine kvm/hostile kvm/cpu
         kvm/differential launch/launch launch/owner-cli launch/snp-launch launch/snp-guest snp/cli)
fi
device=()
[ "$(id -u)" = 0 ] || device=(--device-mode 0666)
echo "test:sanitize: ${#specs[@]} native suites under the sanitized emulator and addon ($mode), each on a fresh emulator state"
for s in "${specs[@]}"; do
  t0=$(date +%s)
  set +e
  ASAN_OPTIONS=$ASAN_NODE node bin/sev-emu.js run --temp-state "${device[@]}" -- \
    node_modules/.bin/mocha --no-config --timeout 300000 --reporter dot "dist/test/$s.test.js" >"$LOGS/suite.out" 2>&1
  status=$?
  set -e
  summary=$(grep -E '^ +[0-9]+ (passing|failing|pending)' "$LOGS/suite.out" | tr -s ' ' | tr '\n' ',' | sed 's/,$//' || true)
  echo "  $s:${summary:- no summary}, $(( $(date +%s) - t0 )) s"
  if [ $status -ne 0 ]; then
    failures+=("suite $s (exit $status)")
    sed -n '/failing/,$p' "$LOGS/suite.out" | head -60 || true
  fi
done

# The C clients, built with the sanitizers, leak checking on.
CDIR=$OUT/c
mkdir -p "$CDIR"
cc_san() { out=$1; shift; ${CC:-cc} "${SAN[@]}" -O1 -o "$CDIR/$out" "$@"; }
cc_san sev_client -std=c99 -D_DEFAULT_SOURCE -Wall test/c/sev_client.c
cc_san sev_owner_test -std=c99 -D_DEFAULT_SOURCE test/c/sev_owner_test.c -lcrypto
cc_san kvm_sev_client -std=c99 -D_DEFAULT_SOURCE test/c/kvm_sev_client.c -lcrypto -ldl
cc_san kvm_fuzz -std=c99 -D_DEFAULT_SOURCE test/c/kvm_fuzz.c
cc_san sev_stress -std=c99 -D_DEFAULT_SOURCE -pthread test/c/sev_stress.c
cc_san conformance -std=c11 -D_GNU_SOURCE -Wall test/c/conformance/*.c
cc_san snp_launch_client -std=c99 -D_DEFAULT_SOURCE test/c/snp_launch_client.c -lcrypto

client() { # name, sev-emu options..., --, argv...
  local name=$1; shift
  local t0 rc
  t0=$(date +%s)
  set +e
  ASAN_OPTIONS=$ASAN_CLIENT node bin/sev-emu.js run --temp-state "$@" >"$LOGS/$name.out" 2>&1
  rc=$?
  set -e
  if [ $rc -ne 0 ] || grep -q '^not ok' "$LOGS/$name.out"; then
    failures+=("C client $name (exit $rc)")
    tail -30 "$LOGS/$name.out"
  fi
  echo "  $name: exit $rc, $(( $(date +%s) - t0 )) s"
}
echo "test:sanitize: C clients (sanitized, leak checking on)"
client sev_client "${device[@]}" -- "$CDIR/sev_client" all
client sev_owner_test --generation milan --host-snp "${device[@]}" -- env SNP_MODE=on "$CDIR/sev_owner_test"
client kvm_sev_client "${device[@]}" -- "$CDIR/kvm_sev_client" all
client snp_launch_client --host-snp --kvm soft "${device[@]}" -- "$CDIR/snp_launch_client"
if [ "$mode" = short ]; then
  client kvm_fuzz "${device[@]}" -- "$CDIR/kvm_fuzz" 1 60
  client sev_stress "${device[@]}" -- "$CDIR/sev_stress" 2 60 2
else
  client sev_owner_test_naples --generation naples "${device[@]}" -- env SNP_MODE=none "$CDIR/sev_owner_test"
  client kvm_fuzz "${device[@]}" -- "$CDIR/kvm_fuzz" 1 300
  client kvm_fuzz_5eed "${device[@]}" -- "$CDIR/kvm_fuzz" 0x5eed 300
  client sev_stress "${device[@]}" -- "$CDIR/sev_stress" 4 150 3
fi
if [ "$(id -u)" = 0 ]; then
  for area in platform kvm-caps kvm-sev; do
    SEV_EMU_DEVICE_GROUP= client "conformance_$area" --device-mode 0600 -- "$CDIR/conformance" "$area"
  done
fi

# --- verdict -----------------------------------------------------------------------------------
reports=$(find "$LOGS" -name 'asan.*' -o -name 'ubsan.*' | sort)
if [ -n "$reports" ]; then
  for r in $reports; do
    echo "=== sanitizer report $r"
    head -60 "$r" || true
  done
  failures+=("$(echo "$reports" | wc -l) sanitizer report(s) in $LOGS")
fi
echo "test:sanitize: $mode run in $(( $(date +%s) - built )) s (build $((built - start)) s)"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'test:sanitize: FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "test:sanitize: no sanitizer report, every suite and client passed"
