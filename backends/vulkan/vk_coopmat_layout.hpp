// The element-to-lane layout of a 16×16 fp32 cooperative matrix (VK_NV_cooperative_matrix leaves
// it to the implementation), as attend_coopmat.comp's in-register softmax needs it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longattn::vk {

// The model (see attend_coopmat.comp, REG_SOFTMAX): 32 lanes × 8 components; component e of
// lane l holds row (l >> lane_row_shift) + 8·bit e of elem_row_hi, column nibble e of elem_cols +
// lane_col_step·(l mod 2^lane_row_shift).
struct CoopmatLayout {
  bool known = false;
  int32_t lane_row_shift = 0, elem_row_hi = 0, lane_col_step = 0;
  uint32_t elem_cols = 0;
  std::string describe() const;
  // The transposed tile (Sᵀ, Oᵀ) needs each lane's components to cover 4 columns, nibbles 0, 1, 8
  // and 9, in 2 rows each.
  bool transposable() const;
  // A 16-bit left operand's components hold the same elements, in the same order, as the fp32
  // accumulator's (P can then be copied component by component: attend_coopmat_khr).
  bool operand_matches = false;
};

constexpr size_t kCoopmatLayoutProbeFloats = 769;  // coopmat_layout.comp's output

// Fits the model to coopmat_layout.comp's output: 256 components as loaded, 256 as a matrix
// product's result (component e of lane l at 8·l + e, value 16·row + column), then the number of
// components per lane. known = false unless both agree and the model reproduces every component.
CoopmatLayout fit_coopmat_layout(const float* probe);

}  // namespace longattn::vk
