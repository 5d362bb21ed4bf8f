/* ELU(scale * x + shift), per channel, in one pass: an eval-mode BatchNorm and the ELU after it
 * (mDCSRN's pre-activation units; see volgan/inference/cpu/norm_elu.py).
 *
 * x holds `voxels` voxels of `channels` values each, voxel v at x + v * pitch (a channels-last
 * tensor has pitch == channels; a channel range of a larger channels-last buffer, e.g. a dense
 * block's running concatenation, has its buffer's channel count). y is dense channels-last
 * (pitch == channels). scale and shift hold the per-channel values repeated for `chunk` voxels,
 * so that when x is dense, element i of a chunk of `chunk * channels` values uses scale[i] and the
 * loop has no index arithmetic (and vectorises over voxels for any channel count). Job j is the
 * voxels [j * chunk, (j + 1) * chunk) (the last job may be shorter); each function handles jobs
 * [begin, end). Arithmetic is in float32; bfloat16 values are rounded to nearest even once, at
 * the end.
 */
#include <stdint.h>

#include "elementwise.h"

/* values of a job staged contiguously when x is not dense: per voxel, the channel loop has a
 * vector remainder (24 or 40 channels) that compilers leave scalar, which made such reads 2-3x
 * slower than dense ones */
#define STAGED_VALUES 8192

#define DEFINE_AFFINE_ELU(NAME, TYPE, LOAD, STORE)                                                                 \
    void NAME(const TYPE *x, TYPE *y, const float *scale, const float *shift, float alpha, int64_t channels,      \
              int64_t pitch, int64_t chunk, int64_t voxels, int64_t begin, int64_t end)                           \
    {                                                                                                              \
        const int stage = pitch != channels && chunk * channels <= STAGED_VALUES;                                  \
        PARALLEL_JOBS                                                                                              \
        for (int64_t job = begin; job < end; ++job) {                                                              \
            TYPE staged[STAGED_VALUES];                                                                            \
            const int64_t first = job * chunk, n = voxels - first < chunk ? voxels - first : chunk;                \
            TYPE *restrict ys = y + first * channels;                                                              \
            if (pitch == channels || stage) {                                                                      \
                const TYPE *restrict xs = x + first * channels;                                                    \
                if (stage) {                                                                                       \
                    for (int64_t v = 0; v < n; ++v)                                                                \
                        for (int64_t c = 0; c < channels; ++c)                                                     \
                            staged[v * channels + c] = x[(first + v) * pitch + c];                                 \
                    xs = staged;                                                                                   \
                }                                                                                                  \
                IVDEP                                                                                              \
                for (int64_t i = 0; i < n * channels; ++i)                                                         \
                    ys[i] = STORE(affine_elu(LOAD(xs[i]), scale[i], shift[i], alpha));                             \
                continue;                                                                                          \
            }                                                                                                      \
            for (int64_t v = 0; v < n; ++v) {                                                                      \
                const TYPE *restrict xv = x + (first + v) * pitch;                                                 \
                TYPE *restrict yv = ys + v * channels;                                                             \
                IVDEP                                                                                              \
                for (int64_t c = 0; c < channels; ++c)                                                             \
                    yv[c] = STORE(affine_elu(LOAD(xv[c]), scale[c], shift[c], alpha));                             \
            }                                                                                                      \
        }                                                                                                          \
    }

DEFINE_AFFINE_ELU(affine_elu_f32, float, f32_to_float, float_to_f32)
DEFINE_AFFINE_ELU(affine_elu_bf16, uint16_t, bf16_to_float, float_to_bf16)
