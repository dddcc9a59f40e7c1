// Shared by every longattn compute shader: memory access through buffer device addresses,
// element types, 16-bit float conversions (done with integer arithmetic, so no 16-bit storage or
// float16 feature is needed), workgroup linearisation.
//
// Tensors are addressed by byte addresses (uint64_t). f32 elements are read and written as
// floats; f16/bf16 elements as halves of 32-bit words (the backend rounds every allocation up to
// 256 bytes, so the containing word is always inside the buffer). A 16-bit store touches only
// its half of the word, with atomicAnd/atomicOr, so neighbouring elements written by other
// invocations are never lost.

#extension GL_EXT_buffer_reference : require
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require

layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32s { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer U32s { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer I32s { int v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer I64s { int64_t v[]; };

// The only push constant: the address of the dispatch's argument block.
layout(push_constant) uniform Push { uint64_t args; } pc;

// Element i (64-bit index) of an array at a byte address.
float ld_f32(uint64_t base, int64_t i) { return F32s(base + uint64_t(i) * 4).v[0]; }
void st_f32(uint64_t base, int64_t i, float x) { F32s(base + uint64_t(i) * 4).v[0] = x; }
int ld_i32(uint64_t base, int64_t i) { return I32s(base + uint64_t(i) * 4).v[0]; }
void st_i32(uint64_t base, int64_t i, int x) { I32s(base + uint64_t(i) * 4).v[0] = x; }
int64_t ld_i64(uint64_t base, int64_t i) { return I64s(base + uint64_t(i) * 8).v[0]; }

// longattn_dtype values
const int kDtypeF32 = 0;
const int kDtypeF16 = 1;
const int kDtypeBF16 = 2;

const float kLog2e = 1.4426950408889634;
const float kLn2 = 0.6931471805599453;
const float kNegInf = -1.0 / 0.0;

// Linear workgroup id of a dispatch laid out over x and y.
uint64_t linear_group_id() {
  return uint64_t(gl_WorkGroupID.y) * uint64_t(gl_NumWorkGroups.x) + uint64_t(gl_WorkGroupID.x);
}

uint load_half_bits(uint64_t addr) {
  const uint word = U32s(addr & ~uint64_t(3)).v[0];
  return (addr & uint64_t(2)) != 0 ? (word >> 16) : (word & 0xffffu);
}

float f16_bits_to_float(uint h) { return unpackHalf2x16(h).x; }
float bf16_bits_to_float(uint h) { return uintBitsToFloat(h << 16); }

// IEEE binary16, round to nearest even, overflow to inf, NaN stays NaN (as src/half.hpp).
uint float_to_f16_bits(float f) {
  const uint u = floatBitsToUint(f);
  const uint sign = (u >> 16) & 0x8000u;
  const uint a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;
  if (a >= 0x477ff000u) return sign | 0x7c00u;
  if (a < 0x38800000u) {  // subnormal or zero: value·2^24 rounded to nearest even
    const float v = uintBitsToFloat(a) * 16777216.0;
    uint m = uint(v);
    const float rem = v - float(m);
    if (rem > 0.5 || (rem == 0.5 && (m & 1u) != 0)) ++m;
    return sign | m;
  }
  uint r = a + 0xfffu + ((a >> 13) & 1u);
  r -= 112u << 23;
  return sign | (r >> 13);
}

uint float_to_bf16_bits(float f) {
  uint u = floatBitsToUint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  u += 0x7fffu + ((u >> 16) & 1u);
  return u >> 16;
}

float load_elem(uint64_t addr, int dtype) {
  if (dtype == kDtypeF32) return F32s(addr).v[0];
  const uint h = load_half_bits(addr);
  return dtype == kDtypeF16 ? f16_bits_to_float(h) : bf16_bits_to_float(h);
}

void store_elem(uint64_t addr, int dtype, float value) {
  if (dtype == kDtypeF32) {
    F32s(addr).v[0] = value;
    return;
  }
  const uint h = dtype == kDtypeF16 ? float_to_f16_bits(value) : float_to_bf16_bits(value);
  U32s word = U32s(addr & ~uint64_t(3));
  if ((addr & uint64_t(2)) != 0) {
    atomicAnd(word.v[0], 0x0000ffffu);
    atomicOr(word.v[0], h << 16);
  } else {
    atomicAnd(word.v[0], 0xffff0000u);
    atomicOr(word.v[0], h);
  }
}

// Byte address of element (b, t, h, d) of a strided 4-D view.
uint64_t elem_addr(uint64_t base, int64_t s0, int64_t s1, int64_t s2, int64_t s3, int64_t b, int64_t t,
                   int64_t h, int64_t d) {
  return base + uint64_t(b * s0 + t * s1 + h * s2 + d * s3);
}
