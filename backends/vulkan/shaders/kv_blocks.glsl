// Reading K/V rows in ggml's block formats (LONGATTN_DTYPE_Q8_0 / Q4_0, see src/quant.hpp).
// Include after common.glsl.
//
// A block holds 32 consecutive values of a row: an fp16 scale d (2 bytes, little endian), then
//   Q8_0: 32 int8 q                                 value i = d·q[i]
//   Q4_0: 16 bytes of nibbles, byte j = q[j] | q[j + 16] << 4, value i = d·(q[i] − 8)
// Blocks are 34 / 18 bytes, so a block (and its scale) may start at any byte: reads go through
// the containing 32-bit words. The backend rounds every allocation up to 256 bytes and a read never
// reaches past the block's last byte, so every word touched lies inside the buffer.

const int kDtypeQ8_0 = 3;
const int kDtypeQ4_0 = 4;
const int kQuantBlock = 32;  // values per block
const int kQ4_0Offset = 8;   // nibble value 8 means 0

bool is_block_dtype(int dtype) { return dtype == kDtypeQ8_0 || dtype == kDtypeQ4_0; }

// Four bytes starting at any byte address, byte 0 in the low bits.
uint load_u32_any(uint64_t addr) {
  const uint64_t word = addr & ~uint64_t(3);
  const uint shift = uint(addr & uint64_t(3)) * 8u;
  const uint lo = U32s(word).v[0];
  if (shift == 0u) return lo;
  return (lo >> shift) | (U32s(word + 4).v[0] << (32u - shift));
}

// Values i0 .. i0 + 3 of the block at `block` (i0 a multiple of 4, below 32).
vec4 block_quad(uint64_t block, int i0, int dtype) {
  const float d = unpackHalf2x16(load_u32_any(block) & 0xffffu).x;
  vec4 x;
  if (dtype == kDtypeQ8_0) {
    const int q = int(load_u32_any(block + uint64_t(2 + i0)));
    for (int e = 0; e < 4; ++e) x[e] = float(bitfieldExtract(q, 8 * e, 8));  // sign-extended int8
  } else {
    const uint q = load_u32_any(block + uint64_t(2 + (i0 & 15)));
    const uint nibble_shift = i0 < 16 ? 0u : 4u;
    for (int e = 0; e < 4; ++e) x[e] = float(int((q >> (8u * uint(e) + nibble_shift)) & 15u) - kQ4_0Offset);
  }
  return d * x;
}
