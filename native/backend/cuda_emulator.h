// The CUDA backend's C table emulated on the CPU, for testing the CUDA path's host side without
// a GPU (ONESTEP_CUDA_EMULATE=1; see cuda_emulator.cc).
#pragma once

#include "../../kernels/onestep_cuda_api.h"

namespace onestep {

const onestep_cuda_api* emulatedCudaApi();

}  // namespace onestep
