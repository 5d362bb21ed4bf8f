/* Fused passes around a 3x3x3 convolution computed as Winograd F(4, 3) along depth and 3x3 2D
 * convolutions in-plane (see volgan/inference/cpu/native_winograd.py for the algorithm and the layouts).
 *
 * Activations are channels-last volumes: (batch, depth, plane, channel) with a channel stride
 * (the volume may be a channel range of a wider buffer). "Tiles" are groups of 4 output planes;
 * tile t of a batch item reads input planes 4t-1 .. 4t+4 (out-of-range planes are the zero
 * padding). Each function handles jobs [begin, end) of the batch * tiles jobs, so callers can
 * split the work between threads.
 *
 * The input pass may apply a per-channel affine map and an ELU first (a pre-activation unit,
 * mDCSRN); the output pass applies the bias, an optional residual, a per-channel affine map
 * (BatchNorm after the residual, RED-WGAN) and a leaky ReLU (slope 1: none, 0: ReLU).
 */
#include <stdint.h>

#include "elementwise.h"

/* Loop body of the input pass for one tile and one plane position: six input values (after the
 * prologue ACT) -> the six transformed values d_0 .. d_5. */
#define WINOGRAD_INPUT_LOOP(ACT)                                                                      \
    PARALLEL_JOBS                                                                                     \
    for (int64_t job = begin; job < end; ++job) {                                                     \
        const int64_t b = job / tiles, t = job % tiles;                                               \
        const float *in[6];                                                                           \
        float keep[6];                                                                                \
        for (int k = 0; k < 6; ++k) {                                                                 \
            int64_t z = 4 * t - 1 + k;                                                                \
            keep[k] = (z >= 0 && z < depth) ? 1.0f : 0.0f;                                            \
            z = z < 0 ? 0 : (z >= depth ? depth - 1 : z); /* any valid plane; multiplied by 0 */      \
            in[k] = x + (b * depth + z) * plane * x_stride;                                           \
        }                                                                                             \
        float *out = d + job * plane * channels;                                                      \
        for (int64_t p = 0; p < plane; ++p) {                                                         \
            const float *restrict x0 = in[0] + p * x_stride, *restrict x1 = in[1] + p * x_stride;     \
            const float *restrict x2 = in[2] + p * x_stride, *restrict x3 = in[3] + p * x_stride;     \
            const float *restrict x4 = in[4] + p * x_stride, *restrict x5 = in[5] + p * x_stride;     \
            float *restrict d0 = out + p * channels, *restrict d1 = d0 + block, *restrict d2 = d1 + block; \
            float *restrict d3 = d2 + block, *restrict d4 = d3 + block, *restrict d5 = d4 + block;    \
            IVDEP                                                                                     \
            for (int64_t c = 0; c < channels; ++c) {                                                  \
                const float s0 = keep[0] * ACT(x0[c]), s1 = keep[1] * ACT(x1[c]);                     \
                const float s2 = keep[2] * ACT(x2[c]), s3 = keep[3] * ACT(x3[c]);                     \
                const float s4 = keep[4] * ACT(x4[c]), s5 = keep[5] * ACT(x5[c]);                     \
                const float s12 = s1 + s2, s31 = s3 - s1, s42 = s4 - s2;                              \
                d0[c] = s0 * 4.0f - s2 * 5.0f + s4;                                                   \
                d1[c] = s3 + s4 - s12 * 4.0f;                                                         \
                d2[c] = s4 - s3 + (s1 - s2) * 4.0f;                                                   \
                d3[c] = s42 + s31 * 2.0f;                                                             \
                d4[c] = s42 - s31 * 2.0f;                                                             \
                d5[c] = s1 * 4.0f - s3 * 5.0f + s5;                                                   \
            }                                                                                         \
        }                                                                                             \
    }

#define IDENTITY(v) (v)
#define AFFINE_ELU(v) affine_elu((v), scale[c], shift[c], alpha)

/* d_i = B^T applied along depth to the 6 input planes of each tile; with elu != 0 the input is
 * ELU(scale * x + shift) (per channel), else x itself. The padding planes are zeros after that.
 * x: (batch, depth, plane, x_stride), channels [0, channels) read.
 * d: 6 blocks of (batch * tiles, plane, channels), contiguous. */
void winograd_input(const float *x, int64_t x_stride, float *d, int elu, const float *scale, const float *shift,
                    float alpha, int64_t batch, int64_t depth, int64_t plane, int64_t channels, int64_t tiles,
                    int64_t begin, int64_t end)
{
    const int64_t block = batch * tiles * plane * channels;
    if (elu) {
        WINOGRAD_INPUT_LOOP(AFFINE_ELU)
    } else {
        WINOGRAD_INPUT_LOOP(IDENTITY)
    }
}

static inline float leaky(float v, float slope) { return v > 0.0f ? v : v * slope; }

/* y = leaky(scale * (A^T m + residual) + shift, slope) for the 4 output planes of each tile
 * (planes beyond the depth are dropped); put the convolution's bias into shift (scale * bias).
 * m: 6 pointers to (batch * tiles, plane, channels) blocks; y: (batch, depth, plane, y_stride),
 * channels [0, channels) written; residual: NULL or (batch, depth, plane, r_stride). */
void winograd_output(const float *const *m, float *y, int64_t y_stride, const float *residual, int64_t r_stride,
                     const float *scale, const float *shift, float slope, int64_t batch, int64_t depth,
                     int64_t plane, int64_t channels, int64_t tiles, int64_t begin, int64_t end)
{
    (void)batch;
    PARALLEL_JOBS
    for (int64_t job = begin; job < end; ++job) {
        const int64_t b = job / tiles, t = job % tiles;
        const int64_t first = 4 * t, planes = depth - first < 4 ? depth - first : 4;
        float *out[4];
        const float *res[4];
        for (int k = 0; k < 4; ++k) {
            const int64_t z = b * depth + first + (k < planes ? k : 0);
            out[k] = y + z * plane * y_stride;
            res[k] = residual ? residual + z * plane * r_stride : NULL;
        }
        const int64_t base = job * plane * channels;
        for (int64_t p = 0; p < plane; ++p) {
            const int64_t mp = base + p * channels, yp = p * y_stride, rp = p * r_stride;
            const float *restrict m0 = m[0] + mp, *restrict m1 = m[1] + mp, *restrict m2 = m[2] + mp;
            const float *restrict m3 = m[3] + mp, *restrict m4 = m[4] + mp, *restrict m5 = m[5] + mp;
            if (planes == 4 && residual) {
                float *restrict y0 = out[0] + yp, *restrict y1 = out[1] + yp;
                float *restrict y2 = out[2] + yp, *restrict y3 = out[3] + yp;
                const float *restrict r0 = res[0] + rp, *restrict r1 = res[1] + rp;
                const float *restrict r2 = res[2] + rp, *restrict r3 = res[3] + rp;
                IVDEP
                for (int64_t c = 0; c < channels; ++c) {
                    const float m12 = m1[c] + m2[c], m21 = m1[c] - m2[c], m34 = m3[c] + m4[c], m43 = m3[c] - m4[c];
                    y0[c] = leaky(scale[c] * (m0[c] + m12 + m34 + r0[c]) + shift[c], slope);
                    y1[c] = leaky(scale[c] * (m21 + m43 * 2.0f + r1[c]) + shift[c], slope);
                    y2[c] = leaky(scale[c] * (m12 + m34 * 4.0f + r2[c]) + shift[c], slope);
                    y3[c] = leaky(scale[c] * (m21 + m43 * 8.0f + m5[c] + r3[c]) + shift[c], slope);
                }
            } else if (planes == 4) {
                float *restrict y0 = out[0] + yp, *restrict y1 = out[1] + yp;
                float *restrict y2 = out[2] + yp, *restrict y3 = out[3] + yp;
                IVDEP
                for (int64_t c = 0; c < channels; ++c) {
                    const float m12 = m1[c] + m2[c], m21 = m1[c] - m2[c], m34 = m3[c] + m4[c], m43 = m3[c] - m4[c];
                    y0[c] = leaky(scale[c] * (m0[c] + m12 + m34) + shift[c], slope);
                    y1[c] = leaky(scale[c] * (m21 + m43 * 2.0f) + shift[c], slope);
                    y2[c] = leaky(scale[c] * (m12 + m34 * 4.0f) + shift[c], slope);
                    y3[c] = leaky(scale[c] * (m21 + m43 * 8.0f + m5[c]) + shift[c], slope);
                }
            } else { /* the last tile of a depth that is not a multiple of 4 */
                for (int64_t c = 0; c < channels; ++c) {
                    const float m12 = m1[c] + m2[c], m21 = m1[c] - m2[c], m34 = m3[c] + m4[c], m43 = m3[c] - m4[c];
                    const float v[4] = {m0[c] + m12 + m34, m21 + m43 * 2.0f, m12 + m34 * 4.0f, m21 + m43 * 8.0f + m5[c]};
                    for (int64_t k = 0; k < planes; ++k)
                        out[k][yp + c] = leaky(scale[c] * (v[k] + (residual ? res[k][rp + c] : 0.0f)) + shift[c], slope);
                }
            }
        }
    }
}
