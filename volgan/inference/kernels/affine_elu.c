/* ELU(scale * x + shift), per channel, in one pass: an eval-mode BatchNorm and the ELU after it
 * (mDCSRN's pre-activation units; see volgan/inference/norm_elu.py).
 *
 * x and y are channels-last tensors seen as flat arrays. scale and shift hold the per-channel
 * values repeated for a whole number of voxels: `period` elements, a multiple of the channel
 * count, so that element i of a chunk uses scale[i] and the loop has no index arithmetic (and
 * vectorises). Job j is the chunk [j * period, (j + 1) * period) of the `total` elements (the
 * last one may be shorter); each function handles jobs [begin, end). Arithmetic is in float32;
 * bfloat16 values are rounded to nearest even once, at the end.
 */
#include <stdint.h>

#include "elementwise.h"

static inline float bf16_to_float(uint16_t v)
{
    uint32_t bits = (uint32_t)v << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t float_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    return f != f ? (uint16_t)0x7FC0u : (uint16_t)rounded; /* NaN stays a (quiet) NaN */
}

void affine_elu_f32(const float *x, float *y, const float *scale, const float *shift, float alpha, int64_t period,
                    int64_t total, int64_t begin, int64_t end)
{
    for (int64_t job = begin; job < end; ++job) {
        const int64_t first = job * period, n = total - first < period ? total - first : period;
        const float *restrict xs = x + first;
        float *restrict ys = y + first;
        IVDEP
        for (int64_t i = 0; i < n; ++i)
            ys[i] = affine_elu(xs[i], scale[i], shift[i], alpha);
    }
}

void affine_elu_bf16(const uint16_t *x, uint16_t *y, const float *scale, const float *shift, float alpha,
                     int64_t period, int64_t total, int64_t begin, int64_t end)
{
    for (int64_t job = begin; job < end; ++job) {
        const int64_t first = job * period, n = total - first < period ? total - first : period;
        const uint16_t *restrict xs = x + first;
        uint16_t *restrict ys = y + first;
        IVDEP
        for (int64_t i = 0; i < n; ++i)
            ys[i] = float_to_bf16(affine_elu(bf16_to_float(xs[i]), scale[i], shift[i], alpha));
    }
}
