// Causal HyperAttention of a square (query i at the position of key i, i ∈ [0, n)): the
// recursion of the paper, unrolled level by level.
//
//   causal(rows [a, e)):  if e − a ≤ leaf: exact causal attention
//                         h = a + ⌈(e − a)/2⌉
//                         causal([a, h)); causal([h, e))
//                         rows [h, e) also get flat(queries [h, e), keys [a, h))   (fully visible)
//
// Unrolled, every row gets exact causal attention inside its leaf plus one flat term per level at
// which it lies in a lower half. Schedule: all leaves in one block-diagonal `attend` (segments),
// then the flat nodes level by level, left to right, each merged into the accumulator in that
// fixed order (deterministic). Memory: the accumulator plus one node's scratch, O(n). A row's
// last merge is at the deepest node whose upper half holds it, which is the node whose upper
// half its leaf begins: there the merge writes the caller's out for that leaf's rows, and only
// the first leaf (merged by no node) is converted at the end.
#include <algorithm>
#include <vector>

#include "hyper_context.hpp"

namespace longattn {

void hyper_causal_piece(HyperContext& c, int64_t q0, int64_t k0, int64_t n) {
  struct Node {
    int64_t a, e;
  };
  const int64_t leaf = hyper_leaf_size(c);

  // The tree, level by level; leaves collected in position order.
  std::vector<std::vector<Node>> levels{{Node{0, n}}};
  std::vector<int64_t> leaf_bounds;
  for (size_t level = 0; level < levels.size(); ++level) {
    std::vector<Node> next;
    for (const Node& node : levels[level]) {
      const int64_t len = node.e - node.a;
      if (len <= leaf) {
        leaf_bounds.push_back(node.a);
        continue;
      }
      const int64_t h = node.a + (len + 1) / 2;
      next.push_back(Node{node.a, h});
      next.push_back(Node{h, node.e});
    }
    if (!next.empty()) levels.push_back(std::move(next));
  }
  std::sort(leaf_bounds.begin(), leaf_bounds.end());
  leaf_bounds.push_back(n);

  // Leaves: exact causal attention, block-diagonal. Positions relative to the square.
  Mask causal;
  causal.causal = true;
  hyper_exact_piece(c, q0, n, k0, n, causal, 0, 0, &leaf_bounds);

  // Off-diagonal parts, level by level.
  for (size_t level = 0; level < levels.size(); ++level) {
    const std::vector<Node>& nodes = levels[level];
    for (size_t s = 0; s < nodes.size(); ++s) {
      const Node& node = nodes[s];
      const int64_t len = node.e - node.a;
      if (len <= leaf) continue;
      const int64_t h = node.a + (len + 1) / 2;
      // rows [h, e) are the upper half's; its first leaf [h, h') lies in no deeper node's upper
      // half, so this fold is their last: the merge writes them into out (see fold)
      const int64_t h_next = *std::upper_bound(leaf_bounds.begin(), leaf_bounds.end(), h);
      hyper_flat_piece(c, q0 + h, node.e - h, k0 + node.a, h - node.a, int32_t(level), int32_t(s),
                       RowRange{q0 + h, h_next - h});
    }
  }
}

}  // namespace longattn
