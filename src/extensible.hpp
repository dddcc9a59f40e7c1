// Reading caller structs that start with `uint32_t struct_size` (Linux extensible-struct rules):
//   - struct_size below the first version's size (min_size): refused;
//   - smaller than ours: the missing tail keeps the defaults;
//   - larger than ours: accepted only when the unknown tail is all zero bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "error.hpp"

namespace longattn {

template <class T>
T read_extensible(const T* user, const T& defaults, size_t min_size, const char* name) {
  T out = defaults;
  const uint32_t size = user->struct_size;
  if (size < min_size)
    throw Error(LONGATTN_ERROR_STRUCT_SIZE, std::string(name) + ".struct_size=" + std::to_string(size) +
                                                " is below the smallest known size " + std::to_string(min_size));
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(user);
  for (size_t i = sizeof(T); i < size; ++i)
    if (bytes[i] != 0)
      throw Error(LONGATTN_ERROR_STRUCT_SIZE,
                  std::string(name) + ".struct_size=" + std::to_string(size) + " has non-zero bytes past the " +
                      std::to_string(sizeof(T)) + " this library knows (offset " + std::to_string(i) + ")");
  std::memcpy(&out, user, size < sizeof(T) ? size : sizeof(T));
  out.struct_size = uint32_t(sizeof(T));
  return out;
}

}  // namespace longattn
