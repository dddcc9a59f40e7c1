#version 460
// attend_decode_shared — attend_decode.glsl with the per-key reduction of the query scores through
// shared memory (devices without subgroup shuffles in compute shaders).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#define DECODE_SUBGROUP 0
#include "attend_decode.glsl"
