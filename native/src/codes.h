// The integer codes the binding passes to choose an operation. They are part of the ABI: the C#
// enums in src/MetaRun.Torch/NativeEnums.cs (and Reduction, InterpolationMode in Functional.cs)
// carry the same values, and the binding compares its member counts with mr_enum_count before its
// first dispatch, so that a code added on one side only fails loudly instead of running another
// op. Values are explicit so that reordering changes nothing; append, never renumber. Each *_COUNT
// is not a code, only the count.
#pragma once

#include <cstdint>

namespace metarun {

enum Unary : int32_t {
  U_NEG = 0,
  U_SQRT = 1,
  U_EXP = 2,
  U_LOG = 3,
  U_ABS = 4,
  U_RELU = 5,
  U_SIGMOID = 6,
  U_TANH = 7,
  U_SIGN = 8,
  U_RECIPROCAL = 9,
  U_SQUARE = 10,
  U_FLOOR = 11,
  U_LOGICAL_NOT = 12,
  U_COUNT
};

enum Binary : int32_t {
  B_ADD = 0,
  B_SUB = 1,
  B_MUL = 2,
  B_DIV = 3,
  B_POW = 4,
  B_MATMUL = 5,
  B_MAXIMUM = 6,
  B_MINIMUM = 7,
  B_EQ = 8,
  B_NE = 9,
  B_LT = 10,
  B_LE = 11,
  B_GT = 12,
  B_GE = 13,
  B_AND = 14,
  B_OR = 15,
  B_COUNT
};

enum Reduce : int32_t {
  R_SUM = 0,
  R_MEAN = 1,
  R_VAR = 2,
  R_VAR_BIASED = 3,
  R_AMAX = 4,
  R_AMIN = 5,
  R_STD = 6,
  R_COUNT
};

// A loss's reduction; the values are libtorch's at::Reduction (ops.cpp asserts it).
enum LossReduction : int32_t { LR_NONE = 0, LR_MEAN = 1, LR_SUM = 2, LR_COUNT };

enum Interpolation : int32_t { I_BILINEAR = 0, I_BICUBIC = 1, I_AREA = 2, I_COUNT };

enum ImageFormat : int32_t { IMG_PNG = 0, IMG_JPEG = 1, IMG_CMYK_JPEG = 2, IMG_PROGRESSIVE_JPEG = 3, IMG_COUNT };

}  // namespace metarun
