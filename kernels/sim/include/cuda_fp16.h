// cusim stand-in for <cuda_fp16.h>: see ../cusim.h
#pragma once
#include "../cusim.h"
