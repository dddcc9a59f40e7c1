// The ABI edge: run core code, turn any exception into a status and the context's message.
#pragma once

#include <new>
#include <string>

#include "error.hpp"
#include "handles.hpp"

namespace longattn {

template <class F>
longattn_status guarded(longattn_context* ctx, const char* where, F&& body) noexcept {
  auto fail = [&](longattn_status st, const std::string& msg) {
    if (ctx) {
      try {
        ctx->last_error = std::string(where) + ": " + msg;
      } catch (...) {
      }
    }
    return st;
  };
  try {
    body();
    return LONGATTN_OK;
  } catch (const Error& e) {
    return fail(e.status(), e.what());
  } catch (const std::bad_alloc&) {
    return fail(LONGATTN_ERROR_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception& e) {
    return fail(LONGATTN_ERROR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(LONGATTN_ERROR_INTERNAL, "internal error: unknown exception");
  }
}

}  // namespace longattn
