// FLASH: exact attention. One `attend` over all rows and keys with the causal mask; the backend
// tiles it, skips tiles above the diagonal and splits the key range itself when there are too
// few query rows to fill the machine (decode).
#include "problem.hpp"

namespace longattn {

void run_flash(Backend& backend, const Problem& p) { backend.attend(p.attend_args()); }

}  // namespace longattn
