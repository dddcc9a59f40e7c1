// Fitting the cooperative-matrix layout model to the probe's answer (vk_coopmat_layout.hpp).
#include "vk_coopmat_layout.hpp"

#include <cstdio>

namespace longattn::vk {
namespace {

constexpr int kLanes = 32, kElems = 8, kEdge = 16;

}  // namespace

std::string CoopmatLayout::describe() const {
  if (!known) return "unknown";
  char buf[96];
  std::snprintf(buf, sizeof buf, "lane_row_shift %d, elem_row_hi 0x%02x, elem_cols 0x%08x, lane_col_step %d",
                lane_row_shift, elem_row_hi, elem_cols, lane_col_step);
  return std::string(buf) + (operand_matches ? ", left operands alike" : "");
}

CoopmatLayout fit_coopmat_layout(const float* probe) {
  CoopmatLayout none, m;
  if (probe[2 * kLanes * kElems] != float(kElems)) return none;
  int row[kLanes][kElems], col[kLanes][kElems];
  bool seen[kEdge * kEdge] = {};
  for (int l = 0; l < kLanes; ++l)
    for (int e = 0; e < kElems; ++e) {
      const float loaded = probe[kElems * l + e], product = probe[kLanes * kElems + kElems * l + e];
      const int v = int(loaded);
      if (loaded != product || float(v) != loaded || v < 0 || v >= kEdge * kEdge || seen[v]) return none;
      seen[v] = true;
      row[l][e] = v / kEdge;
      col[l][e] = v % kEdge;
    }
  // The lanes of a row: the low bits of the lane index, as many as make 32 lanes cover 8 rows.
  m.lane_row_shift = 2;
  m.lane_col_step = col[1][0] - col[0][0];
  for (int e = 0; e < kElems; ++e) {
    if (row[0][e] != 0 && row[0][e] != 8) return none;
    if (row[0][e] == 8) m.elem_row_hi |= 1 << e;
    m.elem_cols |= uint32_t(col[0][e]) << (4 * e);
  }
  for (int l = 0; l < kLanes; ++l)
    for (int e = 0; e < kElems; ++e) {
      const int r = (l >> m.lane_row_shift) + 8 * ((m.elem_row_hi >> e) & 1);
      const int c = int((m.elem_cols >> (4 * e)) & 15u) + m.lane_col_step * (l & ((1 << m.lane_row_shift) - 1));
      if (row[l][e] != r || col[l][e] != c) return none;
    }
  m.known = true;
  m.operand_matches = true;
  for (int i = 0; i < kLanes * kElems; ++i)
    if (probe[2 * kLanes * kElems + 1 + i] != probe[kLanes * kElems + i]) m.operand_matches = false;
  return m;
}

bool CoopmatLayout::transposable() const {
  if (!known) return false;
  int seen = 0;  // bit 2·slot + hi for each component
  for (int e = 0; e < kElems; ++e) {
    const uint32_t nib = (elem_cols >> (4 * e)) & 15u;
    if (nib != 0 && nib != 1 && nib != 8 && nib != 9) return false;
    const int slot = int(nib & 1u) | int(nib >> 3) << 1;
    seen |= 1 << (2 * slot + ((elem_row_hi >> e) & 1));
  }
  return seen == 0xff;
}

}  // namespace longattn::vk
