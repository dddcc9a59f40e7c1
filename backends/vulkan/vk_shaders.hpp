// SPIR-V of the compute shaders in shaders/*.comp, compiled by glslc at build time and embedded
// by cmake/embed_spirv.cmake into a generated source file.
#pragma once

#include <cstddef>
#include <cstdint>

namespace longattn::vk {

struct EmbeddedShader {
  const char* name;       // file name without ".comp"
  const uint32_t* words;  // SPIR-V
  size_t n_words;
};

// The shader called `name`, or null.
const EmbeddedShader* find_shader(const char* name);

}  // namespace longattn::vk
