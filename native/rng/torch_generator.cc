#include "torch_generator.h"
