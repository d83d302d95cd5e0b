// cusim stand-in for <mma.h>: see ../cusim.h
#pragma once
#include "../cusim.h"
