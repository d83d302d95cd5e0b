// Decoded images to 8-bit RGB, as diffusers' image processor does: x / 2 + 0.5 in float32, clamped
// to [0, 1], then round(v * 255) (numpy's round of the [0, 1] image times 255, halves away from 0).
#pragma once

#include <cstdint>

#include "tensor.h"

namespace onestep {

// One image of a [B, 3, H, W] float32 tensor -> H * W * 3 interleaved bytes at `rgb`, and when
// `unit` is given the clamped [0, 1] image there ([3, H, W]). Throws ERR_ONESTEP_VALUE naming the
// problem (dtype, shape, index).
void decodedToRgb8(const Tensor& images, int64_t batchIndex, uint8_t* rgb, float* unit = nullptr);
// The byte count decodedToRgb8 writes for `images` (validated as above).
int64_t rgb8Bytes(const Tensor& images);

}  // namespace onestep
