// cusim stand-in for <cuda_runtime.h>: see ../cusim.h
#pragma once
#include "../cusim.h"
