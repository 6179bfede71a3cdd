{
  "targets": [
    {
      "target_name": "odb_lazy",
      "sources": ["native/lazy.cc", "native/own-memory.cc", "native/socket-queue.cc", "native/transfer.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": [
        "-std=c++17",
        "-fexceptions",
        "-O2",
        "-Wall",
        "-Wextra",
        "-fstack-protector-strong",
        "-D_FORTIFY_SOURCE=2",
        "-fPIC"
      ],
      "ldflags": ["-Wl,-z,relro", "-Wl,-z,now"],
      "conditions": [["OS!='linux'", { "type": "none" }]]
    }
  ]
}
