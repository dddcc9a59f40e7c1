#include "staging.hpp"

#include "validate.hpp"

namespace longattn {

View stage_in(Backend& backend, Workspace& ws, size_t slot, const View& host, bool upload, void* stream) {
  const char *lo, *hi;
  byte_range(host, lo, hi);
  const size_t bytes = size_t(hi - lo);
  View dev = host;
  dev.data = ws.get(kStagingSlot0 + slot, bytes);
  if (upload) backend.upload(dev.data, lo, bytes, stream);
  return dev;
}

const float* stage_floats(Backend& backend, Workspace& ws, size_t slot, const float* host, int64_t n, void* stream) {
  float* dev = ws.get<float>(kStagingSlot0 + slot, size_t(n));
  backend.upload(dev, host, size_t(n) * sizeof(float), stream);
  return dev;
}

void stage_out(Backend& backend, const View& dev, const View& host, void* stream) {
  const char *lo, *hi;
  byte_range(host, lo, hi);
  backend.download(const_cast<char*>(lo), dev.data, size_t(hi - lo), stream);
}

}  // namespace longattn
