// Run-time loading of NCCL (see nccl_loader.hpp).
#include "nccl_loader.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <type_traits>

#include "error.hpp"

namespace longattn::cuda {

namespace {

constexpr const char* kDefaultLibrary = "libnccl.so.2";  // the soname NCCL 2.x packages install

// Loads every entry point of `lib`; returns "" or the name of the first one missing.
std::string load_symbols(void* lib, NcclApi& a) {
  auto load = [&](auto& fn, const char* name, bool required) -> bool {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
    return fn || !required;
  };
  if (!load(a.GetVersion, "ncclGetVersion", true)) return "ncclGetVersion";
  if (!load(a.CommInitAll, "ncclCommInitAll", true)) return "ncclCommInitAll";
  if (!load(a.CommDestroy, "ncclCommDestroy", true)) return "ncclCommDestroy";
  if (!load(a.GroupStart, "ncclGroupStart", true)) return "ncclGroupStart";
  if (!load(a.GroupEnd, "ncclGroupEnd", true)) return "ncclGroupEnd";
  if (!load(a.Send, "ncclSend", true)) return "ncclSend";
  if (!load(a.Recv, "ncclRecv", true)) return "ncclRecv";
  if (!load(a.GetErrorString, "ncclGetErrorString", true)) return "ncclGetErrorString";
  load(a.GetLastError, "ncclGetLastError", false);
  return "";
}

}  // namespace

const NcclApi& nccl() {
  static std::mutex mutex;
  static std::unique_ptr<NcclApi> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  if (loaded) return *loaded;
  const char* env = std::getenv("LONGATTN_NCCL_LIBRARY");
  const std::string path = env && *env ? env : kDefaultLibrary;
  const std::string hint = " (the NCCL transport needs NCCL 2.7 or newer: install it, or point "
                           "LONGATTN_NCCL_LIBRARY at libnccl.so; the PEER and HOST_STAGED transports need no NCCL)";
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE,
                "NCCL transport: cannot load " + path + ": " + (why ? why : "dlopen failed") + hint);
  }
  auto api = std::make_unique<NcclApi>();
  api->path = path;
  const std::string missing = load_symbols(lib, *api);
  if (!missing.empty()) {
    dlclose(lib);
    throw Error(LONGATTN_ERROR_BACKEND_UNAVAILABLE,
                "NCCL transport: " + path + " has no " + missing + " (ncclSend/ncclRecv appeared in NCCL 2.7)" + hint);
  }
  if (api->GetVersion(&api->version) != kNcclSuccess) api->version = 0;
  loaded = std::move(api);  // the library stays loaded for the life of the process
  return *loaded;
}

std::string nccl_error(const NcclApi& api, const char* what, int result, NcclCommHandle comm) {
  std::string s = std::string("NCCL ") + what + ": " + (api.GetErrorString ? api.GetErrorString(result) : "error") +
                  " (ncclResult " + std::to_string(result) + ")";
  if (api.GetLastError) {
    const char* last = api.GetLastError(comm);
    if (last && *last) s += ": " + std::string(last);
  }
  return s;
}

}  // namespace longattn::cuda
