#include "image.h"

#include <cmath>

#include "error.h"

namespace onestep {

int64_t rgb8Bytes(const Tensor& t) {
  check(t.dtype() == DType::F32 && t.shape().size() == 4 && t.shape()[1] == 3, "ERR_ONESTEP_VALUE",
        "decoded images must be F32 [B, 3, H, W], got ", dtypeName(t.dtype()), shapeString(t.shape()));
  return t.shape()[2] * t.shape()[3] * 3;
}

void decodedToRgb8(const Tensor& t, int64_t b, uint8_t* rgb, float* unit) {
  const int64_t bytes = rgb8Bytes(t);
  check(b >= 0 && b < t.shape()[0], "ERR_ONESTEP_VALUE", "image ", b, " of a batch of ", t.shape()[0]);
  const int64_t plane = bytes / 3;
  const float* x = reinterpret_cast<const float*>(t.data()) + b * 3 * plane;
  for (int64_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) {
      float v = x[c * plane + i] / 2.0f + 0.5f;  // float32 steps, as the reference
      v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;  // (NaN stays NaN: byte 0, as a Uint8Array stores NaN)
      if (unit) unit[c * plane + i] = v;
      const double s = (double)v * 255.0;         // exact: a float times 255 fits a double
      rgb[i * 3 + c] = std::isnan(s) ? 0 : (uint8_t)std::floor(s + 0.5);
    }
  }
}

}  // namespace onestep
