// longattn — demo, benchmark and machine ceilings for the longattn library.
#include <cstdio>
#include <cstring>

#include "tool.hpp"

static void usage() {
  std::fprintf(stderr,
               "usage: longattn <command> [options]\n"
               "  demo      long-context run on the best backend, checked against the reference\n"
               "  bench     measure attention (see `longattn bench --help`)\n"
               "  ceiling   this machine's yardsticks: sgemm GFLOP/s, memory read/copy GB/s\n"
               "  info      build information and devices\n");
}

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const char* cmd = argv[1];
  if (!std::strcmp(cmd, "demo")) return tool::cmd_demo(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "bench")) return tool::cmd_bench(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "ceiling")) return tool::cmd_ceiling(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "info")) {
    std::printf("%s\n", longattn_build_info());
    for (longattn_backend b : {LONGATTN_BACKEND_CPU, LONGATTN_BACKEND_CUDA, LONGATTN_BACKEND_VULKAN}) {
      int32_t n = 0;
      longattn_device_count(b, &n);
      for (int32_t i = 0; i < n; ++i) {
        char name[256];
        longattn_device_name(b, i, name, sizeof name);
        std::printf("%s device %d: %s\n", tool::backend_name(b), i, name);
      }
    }
    return 0;
  }
  usage();
  return 2;
}
