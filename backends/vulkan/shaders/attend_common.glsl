// Shared by the attend shaders (portable and cooperative-matrix): the argument block, the mask
// predicate and tile classification, work-item decoding and the key ranges worth visiting.
// Include after common.glsl.

// Argument block (std430; vulkan_attend.cpp mirrors it as AttendGpuArgs).
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Args {
  int64_t n_groups;
  uint64_t q, k, v, o, lse;                 // tensors (lse may be 0)
  uint64_t st_m, st_l, st_acc;              // running state (STATE)
  uint64_t q_pos, k_pos, q_rows, k_rows, key_logw, q_group, k_group;  // optional, 0 = absent
  uint64_t part;                            // split-KV partials (PHASE 1 and 2)
  int64_t q_stride[4], k_stride[4], v_stride[4], o_stride[4], lse_stride[4];  // bytes
  int64_t n_q, n_k, q_pos0, k_pos0;
  int64_t window_left, window_right, n_global;
  int64_t n_tiles;        // query tiles over all segments
  int64_t n_segments;
  int64_t table_offset;   // byte offset of the segment table from this block
  float qscale;           // scale·log2e, or scale with softcap
  float softcap;          // 0 = off
  int causal;
  int hq, hkv, group;     // group = hq / hkv
  int hg, tr;             // heads and rows per item (hg·tr ≤ rows of a workgroup)
  int n_head_blocks;      // group / hg
  int n_splits;           // key splits per item (PHASE 1 and 2)
  int n_tail;             // keys [n_k − n_tail, n_k) shared by every segment (gathered keys only)
  // ggml-style extras (0 = absent), read by the portable kernel only
  uint64_t add_mask;      // additive mask, f32/f16 (MASK_DT), element (b, phys q, h, phys k)
  uint64_t alibi_slopes;  // f32 [hq]
  uint64_t sinks;         // f32 [hq], natural-log logits
  int64_t mask_stride[4]; // bytes; 0 on a broadcast axis (batch or heads of size 1)
  // the shared tail's own gathers, log-weights and groups (n_tail > 0), [(b·hkv + h)·n_tail + t]
  uint64_t tail_k_rows, tail_key_logw, tail_k_group;
};
// Segment table at args + table_offset: seg_q[n_seg + 1], seg_k[n_seg + 1], tile_start[n_seg + 1].

// Where logical key j of KV head row bh = b·hkv + h finds its gather, log-weight and group:
// entry i of the own keys' arrays ([bh·n_own + j], n_own = n_k − n_tail), or of the shared
// tail's ([bh·n_tail + j − n_own]). Absent arrays are 0.
struct KeyArrays {
  uint64_t rows, logw, group;
  int64_t i;
};
KeyArrays key_arrays(Args A, int64_t bh, int64_t j) {
  const int64_t own = A.n_k - int64_t(A.n_tail);
  if (j < own) return KeyArrays(A.k_rows, A.key_logw, A.k_group, bh * own + j);
  return KeyArrays(A.tail_k_rows, A.tail_key_logw, A.tail_k_group, bh * int64_t(A.n_tail) + (j - own));
}
// The physical K/V row of logical key j (its gather where the keys have one, else j itself).
int64_t key_row(KeyArrays ka, int64_t j) { return ka.rows != 0 ? int64_t(ld_i32(ka.rows, ka.i)) : j; }
bool keys_gathered(Args A) { return A.k_rows != 0 || A.tail_k_rows != 0; }
bool keys_have_logw(Args A) { return A.key_logw != 0 || A.tail_key_logw != 0; }
bool keys_have_groups(Args A) { return A.k_group != 0 || A.tail_k_group != 0; }

// Split-KV phases (specialization constant PHASE of the attend shaders).
const int kPhaseDirect = 0;   // write out/lse or the running state
const int kPhasePartial = 1;  // write (m, l, acc) of one key split to `part` (attend_combine.comp merges)

const int kSkip = 0, kFull = 1, kPartial = 2;
const int64_t kFarLow = -(int64_t(1) << 60);
const int64_t kFarHigh = int64_t(1) << 60;

bool mask_allows(Args A, int64_t qp, int64_t kp) {
  if (A.causal != 0 && kp > qp) return false;
  const bool band = (A.window_left < 0 || qp - kp <= A.window_left) &&
                    (A.window_right < 0 || kp - qp <= A.window_right);
  return band || kp < A.n_global || qp < A.n_global;
}

// As classify_tile in src/mask.hpp: the predicate is monotone in qp − kp.
int classify(Args A, int64_t q_lo, int64_t q_hi, int64_t k_lo, int64_t k_hi) {
  const int64_t dmin = q_lo - k_hi, dmax = q_hi - k_lo;
  const bool band_all = (A.window_left < 0 || dmax <= A.window_left) && (A.window_right < 0 || -dmin <= A.window_right);
  const bool band_any = (A.window_left < 0 || dmin <= A.window_left) && (A.window_right < 0 || -dmax <= A.window_right);
  const bool global_all = k_hi < A.n_global || q_hi < A.n_global;
  const bool global_any = k_lo < A.n_global || q_lo < A.n_global;
  const bool causal_all = A.causal == 0 || dmin >= 0;
  const bool causal_any = A.causal == 0 || dmax >= 0;
  if (!causal_any || (!band_any && !global_any)) return kSkip;
  if (causal_all && (band_all || global_all)) return kFull;
  return kPartial;
}

// One workgroup's work: batch b, KV head hk, head block hb (query heads hk·group + hb·hg + g,
// g < hg), logical query rows [q0, q1) of one segment (tr rows per head at most), logical keys
// [kb, ke) of that segment, and the key split (PHASE 1).
struct Item {
  int64_t b;
  int hk, hb;
  int64_t q0, q1, kb, ke;
  int split;
};

Item decode_item(Args A, uint64_t id, bool split_ids) {
  Item it;
  it.split = 0;
  if (split_ids) {
    it.split = int(id % uint64_t(A.n_splits));
    id /= uint64_t(A.n_splits);
  }
  // query tiles in reverse order: under a causal mask the last tiles have the most keys, and
  // starting them first evens out the tail of the dispatch
  const int64_t tile = A.n_tiles - 1 - int64_t(id % uint64_t(A.n_tiles));
  int64_t rest = int64_t(id / uint64_t(A.n_tiles));
  it.hb = int(rest % A.n_head_blocks);
  rest /= A.n_head_blocks;
  it.hk = int(rest % A.hkv);
  it.b = rest / A.hkv;

  // the table (vulkan_attend.cpp, Block::bytes): seg_q, seg_k, tile_start [n_seg + 1] each, then
  // with several segments the segment s of every query tile (tile_start[s] ≤ tile < tile_start[s + 1])
  const uint64_t table = pc.args + uint64_t(A.table_offset);
  const int64_t n_seg = A.n_segments;
  const int64_t seg = n_seg > 1 ? int64_t(ld_i32(table + uint64_t(3 * (n_seg + 1) * 8), tile)) : 0;
  it.q0 = ld_i64(table, seg) + (tile - ld_i64(table, 2 * (n_seg + 1) + seg)) * A.tr;
  it.q1 = min(it.q0 + A.tr, ld_i64(table, seg + 1));
  it.kb = ld_i64(table, n_seg + 1 + seg);
  it.ke = ld_i64(table, n_seg + 1 + seg + 1);
  return it;
}

// Logical key ranges worth visiting for query positions [q_lo, q_hi] within [kb, ke): with affine
// key positions (k_pos0 + index) the global prefix and band ∩ causal, sorted and disjoint
// (merged when they touch); otherwise the whole segment, then the shared tail keys if any.
// Returns the number of ranges (0..2).
int key_ranges(Args A, bool affine_k, int64_t q_lo, int64_t q_hi, int64_t kb, int64_t ke,
               out int64_t rb0, out int64_t re0, out int64_t rb1, out int64_t re1) {
  rb0 = re0 = rb1 = re1 = 0;
  if (!affine_k) {
    int n = 0;
    if (kb < ke) { rb0 = kb; re0 = ke; n = 1; }
    if (A.n_tail > 0) {
      if (n == 0) { rb0 = A.n_k - A.n_tail; re0 = A.n_k; } else { rb1 = A.n_k - A.n_tail; re1 = A.n_k; }
      ++n;
    }
    return n;
  }
  const int64_t p0 = A.k_pos0;
  const int64_t causal_hi = A.causal != 0 ? q_hi : kFarHigh;
  int64_t band_lo = kFarLow, band_hi = causal_hi;
  if (!(q_lo < A.n_global)) {
    if (A.window_left >= 0) band_lo = q_lo - A.window_left;
    if (A.window_right >= 0) band_hi = min(band_hi, q_hi + A.window_right);
  }
  const int64_t gb = kb, ge = min(ke, min(A.n_global - 1, causal_hi) - p0 + 1);
  const int64_t bb = max(kb, band_lo - p0), be = min(ke, band_hi - p0 + 1);
  int n = 0;
  if (gb < ge) { rb0 = gb; re0 = ge; n = 1; }
  if (bb < be) {
    if (n == 1 && bb <= re0) {
      rb0 = min(rb0, bb);
      re0 = max(re0, be);
    } else if (n == 1) {
      rb1 = bb; re1 = be; n = 2;
    } else {
      rb0 = bb; re0 = be; n = 1;
    }
  }
  return n;
}

// Key tiles of `bk` keys over the ranges, and the share [t_begin, t_end) of them that split
// `split` of `n_splits` visits.
void split_tiles(int n_ranges, int64_t rb0, int64_t re0, int64_t rb1, int64_t re1, int bk, int split,
                 int n_splits, out int64_t t_begin, out int64_t t_end) {
  int64_t n_tiles = 0;
  if (n_ranges > 0) n_tiles += (re0 - rb0 + bk - 1) / bk;
  if (n_ranges > 1) n_tiles += (re1 - rb1 + bk - 1) / bk;
  t_begin = n_tiles * split / n_splits;
  t_end = n_tiles * (split + 1) / n_splits;
}

// Index of a row's running state / split partial.
int64_t state_index(Args A, int64_t b, int h, int64_t phys) { return (b * A.hq + h) * A.n_q + phys; }
