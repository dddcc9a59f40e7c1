#version 460
// attend_decode — split-KV attention for calls with few query rows per KV head (decode), query
// scores reduced across the lanes of a key with subgroup shuffles. The body, with its shapes and
// math, is attend_decode.glsl; attend_decode_shared.comp is the same kernel for devices without
// subgroup shuffles (the reduction goes through shared memory).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#define DECODE_SUBGROUP 1
#include "attend_decode.glsl"
