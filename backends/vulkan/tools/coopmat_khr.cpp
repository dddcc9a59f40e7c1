// coopmat_khr IN.spv OUT.spv — turns a SPIR-V module written with SPV_NV_cooperative_matrix into
// one with SPV_KHR_cooperative_matrix (build-time tool; the build machine's glslang has only the
// NV extension).
//
// The KHR types carry the role of a matrix (left operand A, right operand B, accumulator), which
// lets a driver load each matrix straight into the register layout of its role; NVIDIA's driver
// converts every NV right operand with one MOVM per register at each use. Roles here: fp32
// matrices are accumulators; 16-bit matrices whose row or column count is the specialization
// constant with SpecId kRightOperandSpecId (default 16: attend_coopmat.comp's KB_MARK) are right
// operands; other 16-bit matrices are left operands. Loads and stores take a layout constant
// instead of a column-major boolean, which must then be OpConstantTrue / OpConstantFalse.
// Conversions between roles (OpFConvert of an accumulator into an operand) have no KHR form: the
// shader must not contain them (this tool fails on them).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kRightOperandSpecId = 17;

// opcodes
constexpr uint32_t kOpExtension = 10, kOpTypeInt = 21, kOpTypeFloat = 22, kOpConstantTrue = 41,
                   kOpConstantFalse = 42, kOpConstant = 43, kOpCapability = 17, kOpDecorate = 71,
                   kOpFConvert = 115;
constexpr uint32_t kOpTypeCoopNV = 5358, kOpLoadNV = 5359, kOpStoreNV = 5360, kOpMulAddNV = 5361,
                   kOpLengthNV = 5362;
constexpr uint32_t kOpTypeCoopKHR = 4456, kOpLoadKHR = 4457, kOpStoreKHR = 4458, kOpMulAddKHR = 4459,
                   kOpLengthKHR = 4460;
constexpr uint32_t kCapCoopNV = 5357, kCapCoopKHR = 6022;
constexpr uint32_t kDecorationSpecId = 1;
constexpr uint32_t kUseA = 0, kUseB = 1, kUseAccumulator = 2;

std::vector<uint32_t> string_words(const std::string& s) {
  std::vector<uint32_t> w((s.size() + 4) / 4, 0u);
  std::memcpy(w.data(), s.data(), s.size());
  return w;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "coopmat_khr: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return fail("usage: coopmat_khr IN.spv OUT.spv");
  std::FILE* f = std::fopen(argv[1], "rb");
  if (!f) return fail(std::string("cannot read ") + argv[1]);
  std::vector<uint32_t> in;
  uint32_t w;
  while (std::fread(&w, 4, 1, f) == 1) in.push_back(w);
  std::fclose(f);
  if (in.size() < 5 || in[0] != 0x07230203u) return fail("not a SPIR-V module");

  // first pass: the facts the rewrite needs
  uint32_t bound = in[3], uint_type = 0, marker = 0;
  std::set<uint32_t> true_ids, false_ids, float32_types;
  std::map<uint32_t, uint32_t> coop_use;  // NV matrix type → role
  for (size_t i = 5; i < in.size();) {
    const uint32_t n = in[i] >> 16, op = in[i] & 0xffffu;
    if (n == 0 || i + n > in.size()) return fail("malformed instruction");
    const uint32_t* o = &in[i + 1];
    if (op == kOpTypeInt && o[1] == 32 && o[2] == 0) uint_type = o[0];
    if (op == kOpTypeFloat && o[1] == 32) float32_types.insert(o[0]);
    if (op == kOpConstantTrue) true_ids.insert(o[1]);
    if (op == kOpConstantFalse) false_ids.insert(o[1]);
    if (op == kOpDecorate && n >= 4 && o[1] == kDecorationSpecId && o[2] == kRightOperandSpecId) marker = o[0];
    if (op == kOpTypeCoopNV) {
      uint32_t use = kUseA;
      if (float32_types.count(o[1])) use = kUseAccumulator;
      else if (o[3] == marker || o[4] == marker) use = kUseB;
      coop_use[o[0]] = use;
    }
    i += n;
  }
  if (!uint_type) return fail("no 32-bit unsigned integer type to build constants with");
  const uint32_t c_use[3] = {bound, bound + 1, bound + 2};  // 0 (also RowMajor), 1 (also ColumnMajor), 2
  bound += 3;
  auto layout = [&](uint32_t col_major) -> uint32_t {
    if (true_ids.count(col_major)) return c_use[1];
    if (false_ids.count(col_major)) return c_use[0];
    return 0;
  };

  std::vector<uint32_t> out(in.begin(), in.begin() + 5);
  out[3] = bound;
  auto emit = [&](uint32_t op, const std::vector<uint32_t>& operands) {
    out.push_back(uint32_t(operands.size() + 1) << 16 | op);
    out.insert(out.end(), operands.begin(), operands.end());
  };
  for (size_t i = 5; i < in.size();) {
    const uint32_t n = in[i] >> 16, op = in[i] & 0xffffu;
    const std::vector<uint32_t> o(in.begin() + long(i) + 1, in.begin() + long(i + n));
    i += n;
    switch (op) {
      case kOpCapability:
        emit(op, {o[0] == kCapCoopNV ? kCapCoopKHR : o[0]});
        break;
      case kOpExtension: {
        const std::string name(reinterpret_cast<const char*>(o.data()));
        emit(op, string_words(name == "SPV_NV_cooperative_matrix" ? "SPV_KHR_cooperative_matrix" : name));
        break;
      }
      case kOpTypeInt:
        emit(op, o);
        if (o[0] == uint_type)
          for (uint32_t k = 0; k < 3; ++k) emit(kOpConstant, {uint_type, c_use[k], k});
        break;
      case kOpTypeCoopNV:
        emit(kOpTypeCoopKHR, {o[0], o[1], o[2], o[3], o[4], c_use[coop_use[o[0]]]});
        break;
      case kOpLoadNV: {  // result type, result, pointer, stride, column major, [memory access]
        const uint32_t lay = layout(o[4]);
        if (!lay) return fail("a load's column-major operand is not a constant");
        std::vector<uint32_t> k{o[0], o[1], o[2], lay, o[3]};
        k.insert(k.end(), o.begin() + 5, o.end());
        emit(kOpLoadKHR, k);
        break;
      }
      case kOpStoreNV: {  // pointer, object, stride, column major, [memory access]
        const uint32_t lay = layout(o[3]);
        if (!lay) return fail("a store's column-major operand is not a constant");
        std::vector<uint32_t> k{o[0], o[1], lay, o[2]};
        k.insert(k.end(), o.begin() + 4, o.end());
        emit(kOpStoreKHR, k);
        break;
      }
      case kOpMulAddNV:
        emit(kOpMulAddKHR, o);
        break;
      case kOpLengthNV:
        emit(kOpLengthKHR, o);
        break;
      case kOpFConvert:
        if (coop_use.count(o[0])) return fail("a conversion between matrix roles (OpFConvert) has no KHR form");
        emit(op, o);
        break;
      default:
        emit(op, o);
    }
  }
  f = std::fopen(argv[2], "wb");
  if (!f || std::fwrite(out.data(), 4, out.size(), f) != out.size()) return fail(std::string("cannot write ") + argv[2]);
  std::fclose(f);
  return 0;
}
