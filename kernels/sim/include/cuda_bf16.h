// cusim stand-in for <cuda_bf16.h>: see ../cusim.h
#pragma once
#include "../cusim.h"
