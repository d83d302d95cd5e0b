// How the SIMD kernel files compile for their ISA with no build flags: after their includes,
// ONESTEP_SIMD_BEGIN("avx512f,...") before their functions and ONESTEP_SIMD_END after (GCC: a
// target in pushed options, GCC 12's warnings about the intrinsics' own _mm512_undefined_ps()
// values silenced; clang: a target attribute on every function). Defined where ONESTEP_SIMD_X86
// is (x86-64 with GCC or clang); the functions run only where the CPU reports the features.
#pragma once

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define ONESTEP_SIMD_X86 1
#define ONESTEP_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define ONESTEP_SIMD_BEGIN(features) ONESTEP_PRAGMA(clang attribute push(__attribute__((target(features))), apply_to = function))
#define ONESTEP_SIMD_END ONESTEP_PRAGMA(clang attribute pop)
#else
#define ONESTEP_SIMD_BEGIN(features)                                                                         \
  ONESTEP_PRAGMA(GCC push_options)                                                                           \
  ONESTEP_PRAGMA(GCC target(features))                                                                       \
  ONESTEP_PRAGMA(GCC diagnostic push)                                                                        \
  ONESTEP_PRAGMA(GCC diagnostic ignored "-Wmaybe-uninitialized") ONESTEP_PRAGMA(GCC diagnostic ignored "-Wuninitialized")
#define ONESTEP_SIMD_END ONESTEP_PRAGMA(GCC diagnostic pop) ONESTEP_PRAGMA(GCC pop_options)
#endif
#endif
