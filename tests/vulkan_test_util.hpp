// Shared by the Vulkan test files: the Khronos validation layer switched on for the whole process,
// the presence check, the guard that fails a test case the layer reported anything in, and
// backend-memory copies of host buffers (Mirror).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backend.hpp"
#include "common.hpp"

#if LONGATTN_HAVE_VULKAN

#include "../backends/vulkan/vk_instance.hpp"

namespace test {

// Validation must be decided before the first Vulkan call of the process:
// LONGATTN_VULKAN_VALIDATION=1 unless the environment already decides.
inline const bool g_vulkan_env_ready = [] {
  setenv("LONGATTN_VULKAN_VALIDATION", "1", 0);
  return true;
}();

constexpr int32_t kVulkanDevice = 0;  // the first (best) Vulkan device

// True when a Vulkan device exists (else says that `what` is skipped). Contexts on one device share
// a VkDevice and its pipelines while any of them lives: one backend is kept alive for the whole
// run, so each pipeline is compiled once (the validation layer makes pipeline creation slow).
inline bool have_vulkan(const char* what = "Vulkan tests") {
  (void)g_vulkan_env_ready;
  static const bool have = longattn::vulkan_device_count() > 0;
  if (!have) MESSAGE("no Vulkan device: ", what, " skipped");
  static std::unique_ptr<longattn::Backend> keep_device_alive =
      have ? longattn::make_vulkan_backend(kVulkanDevice) : nullptr;
  return have;
}

// Sets an environment variable for the life of the object (backends read it when created).
struct ScopedEnv {
  std::string name, old;
  bool had;
  ScopedEnv(const char* n, const char* value) : name(n) {
    const char* o = std::getenv(n);
    had = o != nullptr;
    if (had) old = o;
    setenv(n, value, 1);
  }
  ~ScopedEnv() {
    if (had) setenv(name.c_str(), old.c_str(), 1); else unsetenv(name.c_str());
  }
};

// Fails the enclosing test case when the validation layer reported anything during its life.
struct ValidationGuard {
  int64_t before = longattn::vk::validation_message_count();
  ~ValidationGuard() {
    const int64_t after = longattn::vk::validation_message_count();
    if (after != before)
      for (const std::string& m : longattn::vk::validation_messages()) MESSAGE("validation: ", m);
    CHECK_MESSAGE(after == before, "Vulkan validation messages: ", after - before);
  }
};

// Backend-memory copies of host buffers; works for the CPU backend too (its memory is the host's).
struct Mirror {
  longattn::Backend& be;
  std::vector<void*> allocs;
  explicit Mirror(longattn::Backend& b) : be(b) {}
  ~Mirror() {
    for (void* p : allocs) be.free(p);
  }
  void* put(const void* host, size_t bytes) {
    void* p = be.alloc(std::max<size_t>(bytes, 4));
    allocs.push_back(p);
    if (bytes) be.upload(p, host, bytes, nullptr);
    return p;
  }
  template <class T>
  T* put(const std::vector<T>& v) {
    return v.empty() ? nullptr : static_cast<T*>(put(v.data(), v.size() * sizeof(T)));
  }
  longattn::View put(const HostTensor& t) {
    longattn::View v = t.view();
    v.data = put(t.bytes.data(), t.bytes.size());  // the views start at offset 0 of their buffer
    return v;
  }
  longattn::View put(const longattn::View& host, size_t bytes) {
    longattn::View v = host;
    v.data = put(host.data, bytes);  // the views start at offset 0 of their buffer
    return v;
  }
  void get(HostTensor& t, const longattn::View& dev) { be.download(t.bytes.data(), dev.data, t.bytes.size(), nullptr); }
  template <class T>
  std::vector<T> get(const T* dev, size_t n) {
    std::vector<T> out(n);
    if (n) be.download(out.data(), dev, n * sizeof(T), nullptr);
    return out;
  }
};

}  // namespace test

#endif  // LONGATTN_HAVE_VULKAN
