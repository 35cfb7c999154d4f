{
  "targets": [
    {
      # The Node addon: thin C++ objects, one per kernel fd kind (native/addon).
      "target_name": "sev_addon",
      "sources": ["<!@(ls -1 native/addon/*.cc)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      # The firmware emulator, preloaded by `sev-emu run` (native/emu). libcrypto is linked
      # statically with its symbols kept local, so the emulator never binds to the OpenSSL that
      # node itself exports, and node, C programs and QEMU all see the same self-contained library.
      "target_name": "sevemu",
      "type": "shared_library",
      "product_name": "sevemu",
      # The software KVM (native/emu/softkvm) is built when Unicorn's headers are present
      # (scripts/install-unicorn.sh); libunicorn itself is loaded only when it is used.
      "sources": ["<!@(sh scripts/emu-sources.sh sources)"],
      "defines": ["<!@(sh scripts/emu-sources.sh defines)"],
      "include_dirs": ["native", "native/emu"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden", "-fPIC"],
      "ldflags": ["-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic", "-Wl,-z,defs"],
      "libraries": ["-l:libcrypto.a", "-ldl", "-lpthread"]
    }
  ]
}
