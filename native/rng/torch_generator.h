// Torch-compatible CPU random number generator (to be written).
#pragma once
