// Vulkan backend: memory, transfers, merge / state / LSH primitives, device enumeration.
// (attend lives in vulkan_attend.cpp.)
#include "vulkan_backend.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "error.hpp"

namespace longattn {
namespace vk {
namespace {

constexpr uint32_t kNegInfBits = 0xff800000u;  // fp32 −inf
constexpr int32_t kElementwiseWorkgroup = 256;
constexpr int32_t kMergeWorkgroup = 64;
constexpr int32_t kMergeThreadsPerRow = 16;
constexpr int32_t kSortWorkgroup = 256;
constexpr int64_t kSortSharedBins = 4096;  // counting_sort_ballot.comp's kMaxBins
constexpr int32_t kIndexGather = 0, kIndexLabels = 1;  // MODE of index_ops.comp

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

void copy_strides(int64_t dst[4], const View& v) {
  for (int i = 0; i < 4; ++i) dst[i] = v.strides[i];
}

// Argument blocks: std430 mirrors of the `Args` blocks in shaders/*.comp (8-byte fields first).
struct MergeArgs {
  int64_t n_groups;
  uint64_t a, lse_a, b, lse_b, o, lse_o;
  int64_t a_stride[4], lse_a_stride[4], b_stride[4], lse_b_stride[4], o_stride[4], lse_o_stride[4];
  int64_t batch, rows, heads, dim;
};

struct StateFinishArgs {
  int64_t n_groups;
  uint64_t m, l, acc, o, lse;
  int64_t o_stride[4], lse_stride[4];
  int64_t batch, heads, rows, dv;
};

struct LshArgs {
  int64_t n_groups;
  uint64_t x, g, center, codes;
  int64_t x_stride[4];
  int64_t batch, n, heads, dim;
  int32_t bits;
  int32_t pad;
};

struct IndexArgs {
  int64_t n_groups;
  uint64_t dst, src, index;
  int64_t total, n_src, n_index, n_seg, table_offset;
};

struct SortArgs {
  int64_t n_groups;
  uint64_t codes, perm, bins;
  int64_t n;
  int32_t bits;
  int32_t pad;
};

}  // namespace

VulkanBackend::VulkanBackend(std::shared_ptr<Device> device)
    : device_(std::move(device)), stream_(device_) {
  if (const char* mode = std::getenv("LONGATTN_VULKAN_COOPMAT")) {
    if (std::strcmp(mode, "0") == 0) coopmat_mode_ = CoopmatMode::off;
    if (std::strcmp(mode, "force") == 0) coopmat_mode_ = CoopmatMode::force;
  }
  if (const char* mode = std::getenv("LONGATTN_VULKAN_DECODE")) {
    if (std::strcmp(mode, "0") == 0) decode_mode_ = DecodeMode::off;
    if (std::strcmp(mode, "force") == 0) decode_mode_ = DecodeMode::force;
    if (std::strcmp(mode, "force_shared") == 0) decode_mode_ = DecodeMode::force_shared;
  }
  DecodeTuning& t = decode_tuning_;
  if (const char* x = std::getenv("LONGATTN_VULKAN_DECODE_SPLITS")) t.splits = std::max<int64_t>(0, std::atoll(x));
  if (const char* x = std::getenv("LONGATTN_VULKAN_DECODE_KEYS")) t.keys = std::max(0, std::atoi(x));
  if (const char* x = std::getenv("LONGATTN_VULKAN_DECODE_HEADS")) t.heads = std::max(0, std::atoi(x));
  if (const char* x = std::getenv("LONGATTN_VULKAN_DECODE_PREFETCH")) t.prefetch = std::strcmp(x, "0") != 0;
}

VulkanBackend::~VulkanBackend() {
  try {
    stream_.flush("destroy");
  } catch (...) {
    // a destructor cannot report; the device is marked lost if that was the cause
  }
  if (scratch_) device_->release(scratch_);
}

void* VulkanBackend::alloc(size_t bytes) { return reinterpret_cast<void*>(device_->alloc(bytes)); }

void VulkanBackend::free(void* p) {
  if (p) stream_.release_after(addr(p));
}

void VulkanBackend::upload(void* dst, const void* src_host, size_t bytes, void*) {
  stream_.upload(addr(dst), src_host, bytes);
}

void VulkanBackend::download(void* dst_host, const void* src, size_t bytes, void*) {
  stream_.download(dst_host, addr(src), bytes);
}

void VulkanBackend::copy(void* dst, const void* src, size_t bytes, void*) {
  stream_.copy(addr(dst), addr(src), bytes);
}

void VulkanBackend::synchronize(void*) { stream_.flush(); }

void VulkanBackend::attend(const AttendArgs& a) { record_attend(*this, a); }

const CoopmatLayout& VulkanBackend::coopmat_layout() {
  if (coopmat_layout_probed_) return coopmat_layout_;
  coopmat_layout_probed_ = true;
  if (!device_->info().cooperative_matrix_nv || device_->info().subgroup_size != 32) return coopmat_layout_;
  coopmat_layout_ = probe_coopmat_layout("coopmat_layout");
  return coopmat_layout_;
}

const CoopmatLayout& VulkanBackend::coopmat_layout_khr() {
  if (coopmat_layout_khr_probed_) return coopmat_layout_khr_;
  coopmat_layout_khr_probed_ = true;
  if (!device_->info().cooperative_matrix_khr || device_->info().subgroup_size != 32) return coopmat_layout_khr_;
  coopmat_layout_khr_ = probe_coopmat_layout("coopmat_layout_khr");
  return coopmat_layout_khr_;
}

CoopmatLayout VulkanBackend::probe_coopmat_layout(const char* shader) {
  struct {
    int64_t n_groups;
    uint64_t dst;
  } args{1, device_->alloc(kCoopmatLayoutProbeFloats * sizeof(float))};
  stream_.dispatch(device_->pipeline(shader, {}), &args, sizeof args, 1, shader);
  std::vector<float> probe(kCoopmatLayoutProbeFloats);
  stream_.download(probe.data(), args.dst, probe.size() * sizeof(float));
  stream_.release_after(args.dst);
  return fit_coopmat_layout(probe.data());
}

uint64_t VulkanBackend::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    if (scratch_) stream_.release_after(scratch_);
    scratch_ = 0;
    scratch_bytes_ = 0;
    scratch_ = device_->alloc(bytes);
    scratch_bytes_ = bytes;
  }
  return scratch_;
}

void VulkanBackend::state_init(RunningState& s, int64_t batch, int32_t heads, int64_t rows, int32_t dv, void*) {
  const size_t n = size_t(batch) * size_t(heads) * size_t(rows);
  stream_.fill(addr(s.m), n * sizeof(float), kNegInfBits);
  stream_.fill(addr(s.l), n * sizeof(float), 0u);
  stream_.fill(addr(s.acc), n * size_t(dv) * sizeof(float), 0u);
}

void VulkanBackend::state_finish(const RunningState& s, int64_t batch, int32_t heads, int64_t rows,
                                 int32_t dv, const View& out, const View& lse, void*) {
  StateFinishArgs g{};
  const uint64_t total = uint64_t(batch) * uint64_t(heads) * uint64_t(rows) * uint64_t(dv);
  g.n_groups = int64_t(ceil_div(total, kElementwiseWorkgroup));
  g.m = addr(s.m);
  g.l = addr(s.l);
  g.acc = addr(s.acc);
  g.o = addr(out.data);
  g.lse = addr(lse.data);
  copy_strides(g.o_stride, out);
  copy_strides(g.lse_stride, lse);
  g.batch = batch;
  g.heads = heads;
  g.rows = rows;
  g.dv = dv;
  VkPipeline p = device_->pipeline("state_finish", {kElementwiseWorkgroup, out.dtype});
  stream_.dispatch(p, &g, sizeof g, uint64_t(g.n_groups), "state_finish");
}

void VulkanBackend::merge(const View& a, const View& lse_a, const View& b, const View& lse_b,
                          const View& out, const View& lse_out, void*) {
  MergeArgs g{};
  g.batch = a.shape[0];
  g.rows = a.shape[1];
  g.heads = a.shape[2];
  g.dim = a.shape[3];
  const uint64_t total_rows = uint64_t(g.batch) * uint64_t(g.rows) * uint64_t(g.heads);
  g.n_groups = int64_t(ceil_div(total_rows, kMergeWorkgroup / kMergeThreadsPerRow));
  g.a = addr(a.data);
  g.lse_a = addr(lse_a.data);
  g.b = addr(b.data);
  g.lse_b = addr(lse_b.data);
  g.o = addr(out.data);
  g.lse_o = addr(lse_out.data);
  copy_strides(g.a_stride, a);
  copy_strides(g.lse_a_stride, lse_a);
  copy_strides(g.b_stride, b);
  copy_strides(g.lse_b_stride, lse_b);
  copy_strides(g.o_stride, out);
  copy_strides(g.lse_o_stride, lse_out);
  VkPipeline p = device_->pipeline("merge", {kMergeWorkgroup, kMergeThreadsPerRow, a.dtype, b.dtype, out.dtype});
  stream_.dispatch(p, &g, sizeof g, uint64_t(g.n_groups), "merge");
}

void VulkanBackend::lsh_codes(const View& x, const float* G, int32_t r, const float* center,
                              uint16_t* codes, void*) {
  LshArgs g{};
  g.batch = x.shape[0];
  g.n = x.shape[1];
  g.heads = x.shape[2];
  g.dim = x.shape[3];
  const uint64_t total = uint64_t(g.batch) * uint64_t(g.n) * uint64_t(g.heads);
  g.n_groups = int64_t(ceil_div(total, kElementwiseWorkgroup));
  g.x = addr(x.data);
  g.g = addr(G);
  g.center = addr(center);
  g.codes = addr(codes);
  copy_strides(g.x_stride, x);
  g.bits = r;
  VkPipeline p = device_->pipeline("lsh_codes", {kElementwiseWorkgroup, x.dtype, r});
  stream_.dispatch(p, &g, sizeof g, uint64_t(g.n_groups), "lsh_codes");
}

void VulkanBackend::counting_sort(const uint16_t* codes, int64_t n_seg, int64_t n, int32_t r,
                                  int32_t* perm, void*) {
  if (n_seg == 0 || n == 0) return;
  SortArgs g{};
  g.n_groups = n_seg;
  g.codes = addr(codes);
  g.perm = addr(perm);
  g.n = n;
  g.bits = r;
  // counting_sort_ballot.comp where the device has ballots and the bins fit in shared memory
  // (LONGATTN_VULKAN_SORT=portable: counting_sort.comp always; both give the same permutation)
  const char* mode = std::getenv("LONGATTN_VULKAN_SORT");
  const bool portable = mode && std::strcmp(mode, "portable") == 0;
  if (!portable && device_->info().subgroup_ballot && (int64_t(1) << r) <= kSortSharedBins) {
    VkPipeline p = device_->pipeline("counting_sort_ballot", {kSortWorkgroup});
    stream_.dispatch(p, &g, sizeof g, uint64_t(n_seg), "counting_sort");
    return;
  }
  g.bins = scratch(size_t(n_seg) * (size_t(1) << r) * sizeof(uint32_t));
  VkPipeline p = device_->pipeline("counting_sort", {kSortWorkgroup});
  stream_.dispatch(p, &g, sizeof g, uint64_t(n_seg), "counting_sort");
}

void VulkanBackend::gather_i32(int32_t* dst, const int32_t* src, const int32_t* index, int64_t n_seg,
                               int64_t n_src, int64_t n_index, void*) {
  if (n_seg == 0 || n_index == 0) return;
  IndexArgs g{};
  g.total = n_seg * n_index;
  g.n_groups = int64_t(ceil_div(uint64_t(g.total), kElementwiseWorkgroup));
  g.dst = addr(dst);
  g.src = addr(src);
  g.index = addr(index);
  g.n_src = n_src;
  g.n_index = n_index;
  VkPipeline p = device_->pipeline("index_ops", {kElementwiseWorkgroup, kIndexGather});
  stream_.dispatch(p, &g, sizeof g, uint64_t(g.n_groups), "gather_i32");
}

void VulkanBackend::segment_labels(int32_t* dst, const int64_t* offsets, int32_t n_seg, int64_t copies, void*) {
  if (n_seg <= 0) return;
  const int64_t n = offsets[n_seg];
  if (n == 0 || copies == 0) return;
  IndexArgs g{};
  g.total = n * copies;
  g.n_groups = int64_t(ceil_div(uint64_t(g.total), kElementwiseWorkgroup));
  g.dst = addr(dst);
  g.n_index = n;
  g.n_seg = n_seg;
  g.table_offset = int64_t(sizeof g);
  // the block, then the offsets table
  std::vector<uint8_t> bytes(sizeof g + size_t(n_seg + 1) * sizeof(int64_t));
  std::memcpy(bytes.data(), &g, sizeof g);
  std::memcpy(bytes.data() + sizeof g, offsets, size_t(n_seg + 1) * sizeof(int64_t));
  VkPipeline p = device_->pipeline("index_ops", {kElementwiseWorkgroup, kIndexLabels});
  stream_.dispatch(p, bytes.data(), bytes.size(), uint64_t(g.n_groups), "segment_labels");
}

}  // namespace vk

// ---- device enumeration and the factory (declared in src/backend.hpp) ----

int32_t vulkan_device_count() {
  vk::Instance* inst = vk::Instance::get();
  return inst ? int32_t(inst->devices().size()) : 0;
}

std::string vulkan_device_name(int32_t device) {
  vk::Instance* inst = vk::Instance::get();
  if (!inst || device < 0 || size_t(device) >= inst->devices().size()) return std::string();
  return inst->devices()[size_t(device)].name;
}

bool vulkan_device_is_gpu(int32_t device) {
  vk::Instance* inst = vk::Instance::get();
  if (!inst || device < 0 || size_t(device) >= inst->devices().size()) return false;
  return inst->devices()[size_t(device)].is_gpu();
}

std::unique_ptr<Backend> make_vulkan_backend(int32_t device) {
  return std::make_unique<vk::VulkanBackend>(vk::Device::open(device));
}

}  // namespace longattn
