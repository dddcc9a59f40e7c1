// Internal error type: core code throws, the C ABI edge converts to a status + context message.
#pragma once

#include <stdexcept>
#include <string>

#include "longattn.h"

namespace longattn {

class Error : public std::runtime_error {
 public:
  Error(longattn_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  longattn_status status() const { return status_; }

 private:
  longattn_status status_;
};

// Throws Error(status, message) when cond holds. Used by validation at the ABI edge.
#define LONGATTN_RETURN_IF(cond, status, message) \
  do {                                            \
    if (cond) throw ::longattn::Error((status), (message)); \
  } while (0)

}  // namespace longattn
