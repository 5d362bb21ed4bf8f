/* The last layer of the PET U-Net in one pass: a one-channel transposed convolution with kernel 4,
 * stride 2 and padding 1 over a channels-last input, added to a partial result of the same layer,
 * plus the residual input, through a ReLU, written straight into the full-resolution output (see
 * volgan/inference/cpu/subpixel_head.py).
 *
 * In sub-pixel form (volgan/inference/cpu/subpixel.py) the layer is a stride-1 convolution with 2x2x2
 * taps over the input zero-padded by 1, whose 8 output channels are the 8 residues r = (rd, rh, rw)
 * of the output: position q of that convolution and residue r give output voxel 2 q + r - 1 on each
 * axis. Here the 8 residues of a position are one vector of 8 floats, so
 *
 *   out[2 q + r - 1] = max(z[q][r] + sum_{t, c} x[q + t - 1][c] * w[t][c][r] + residual[2 q + r - 1], 0)
 *
 * with x: (depth, height, width, channels) channels-last; w: [td][th][tw][c][8], float32, 32-byte
 * aligned; z: (depth + 1, height + 1, width + 1, 8), the other part's result (the bias included);
 * residual (may be NULL) and out: (2 depth, 2 height, 2 width), float32. x and z are float32
 * (subpixel_head_f32) or bfloat16 (subpixel_head_bf16, the native U-Net in bf16); the arithmetic
 * is float32 in both. Job j is the row of
 * positions (qd, qh) = (j / (height + 1), j % (height + 1)); each job writes output voxels no other
 * job writes.
 *
 * Along a row, BLOCK positions at a time: the tap tw = 1 of position qw reads the input that tap
 * tw = 0 of position qw + 1 reads, so BLOCK + 1 input values and two weight vectors per channel
 * feed 2 BLOCK fused multiply-adds, in BLOCK vector accumulators. The first and last positions of
 * a row (which read the zero padding) take a bounds-checked path.
 */
#include <stdint.h>
#include <string.h>

#include "elementwise.h"

typedef float v8f __attribute__((vector_size(32)));
typedef uint16_t v8u16 __attribute__((vector_size(16)));
typedef uint32_t v8u32 __attribute__((vector_size(32)));
#define BLOCK 8
#define INLINE static inline __attribute__((always_inline))

/* 8 weights (aligned) */
INLINE v8f load8(const float *p) { return *(const v8f *)p; }

/* element i of x or z, float32 or bfloat16 (bf16 a compile-time constant where these inline) */
INLINE float value(const void *p, int64_t i, int bf16)
{
    return bf16 ? bf16_to_float(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* the 8 residues of z at element i (any alignment) */
INLINE v8f residues(const void *p, int64_t i, int bf16)
{
    v8f v;
    if (bf16) {
        v8u16 h;
        memcpy(&h, (const uint16_t *)p + i, sizeof h);
        v8u32 bits = __builtin_convertvector(h, v8u32) << 16;
        memcpy(&v, &bits, sizeof v);
    } else {
        memcpy(&v, (const float *)p + i, sizeof v);
    }
    return v;
}

/* z[q] plus the convolution at position qw of a row (bounds-checked along the row); rows[t]: the
 * element offset of input row t in x, -1 in the padding */
INLINE v8f head_position(const void *x, const int64_t rows[4], const float *w, int64_t channels, int64_t width,
                         int64_t qw, v8f acc, int bf16)
{
    for (int t = 0; t < 4; ++t) {
        if (rows[t] < 0)
            continue;
        for (int tw = 0; tw < 2; ++tw) {
            const int64_t iw = qw + tw - 1;
            if (iw < 0 || iw >= width)
                continue;
            const int64_t xi = rows[t] + iw * channels;
            const float *wt = w + (t * 2 + tw) * channels * 8;
            for (int64_t c = 0; c < channels; ++c)
                acc += value(x, xi + c, bf16) * load8(wt + c * 8);
        }
    }
    return acc;
}

/* a NaN stays NaN, as in PyTorch's clamp_min */
static inline float relu(float v) { return v < 0.0f ? 0.0f : v; }

/* the 8 output voxels of position (qd, qh, qw), those inside the output */
static inline void store_position(float *out, const float *residual, v8f acc, int64_t qd, int64_t qh, int64_t qw,
                                  int64_t depth, int64_t height, int64_t width)
{
    const int64_t oh_n = 2 * height, ow_n = 2 * width;
    for (int r = 0; r < 8; ++r) {
        const int64_t od = 2 * qd + (r >> 2) - 1, oh = 2 * qh + ((r >> 1) & 1) - 1, ow = 2 * qw + (r & 1) - 1;
        if (od < 0 || od >= 2 * depth || oh < 0 || oh >= oh_n || ow < 0 || ow >= ow_n)
            continue;
        const int64_t i = (od * oh_n + oh) * ow_n + ow;
        out[i] = relu(acc[r] + (residual ? residual[i] : 0.0f));
    }
}

/* one job: the row of positions (qd, qh) */
INLINE void head_row(const void *x, int64_t channels, const float *w, const void *z, const float *residual, float *out,
                     int64_t depth, int64_t height, int64_t width, int64_t job, int bf16)
{
    const int64_t qd = job / (height + 1), qh = job % (height + 1);
    const int64_t oh_n = 2 * height, ow_n = 2 * width;
    int64_t rows[4]; /* element offsets of input rows (qd + td - 1, qh + th - 1), -1 in the padding */
    for (int t = 0; t < 4; ++t) {
        const int64_t id = qd + (t >> 1) - 1, ih = qh + (t & 1) - 1;
        rows[t] = id >= 0 && id < depth && ih >= 0 && ih < height ? (id * height + ih) * width * channels : -1;
    }
    const int64_t zrow = (qd * (height + 1) + qh) * (width + 1) * 8;
    const int blocks = width >= BLOCK + 1; /* positions 1 .. width - 1 in blocks (the last one overlapping) */
    for (int64_t next = 1; blocks && next < width; next += BLOCK) {
        const int64_t qw = next + BLOCK <= width ? next : width - BLOCK;
        const int64_t zi = zrow + qw * 8;
        v8f a0 = residues(z, zi, bf16), a1 = residues(z, zi + 8, bf16), a2 = residues(z, zi + 16, bf16),
            a3 = residues(z, zi + 24, bf16), a4 = residues(z, zi + 32, bf16), a5 = residues(z, zi + 40, bf16),
            a6 = residues(z, zi + 48, bf16), a7 = residues(z, zi + 56, bf16);
        for (int t = 0; t < 4; ++t) {
            if (rows[t] < 0)
                continue;
            const int64_t xr = rows[t] + (qw - 1) * channels;
            const float *w0 = w + t * 2 * channels * 8, *w1 = w0 + channels * 8;
            for (int64_t c = 0; c < channels; ++c) {
                const v8f u = load8(w0 + c * 8), v = load8(w1 + c * 8);
                const int64_t i = xr + c;
                const float x0 = value(x, i, bf16), x1 = value(x, i + channels, bf16),
                            x2 = value(x, i + 2 * channels, bf16), x3 = value(x, i + 3 * channels, bf16),
                            x4 = value(x, i + 4 * channels, bf16), x5 = value(x, i + 5 * channels, bf16),
                            x6 = value(x, i + 6 * channels, bf16), x7 = value(x, i + 7 * channels, bf16),
                            x8 = value(x, i + 8 * channels, bf16);
                a0 += x0 * u; a0 += x1 * v; a1 += x1 * u; a1 += x2 * v;
                a2 += x2 * u; a2 += x3 * v; a3 += x3 * u; a3 += x4 * v;
                a4 += x4 * u; a4 += x5 * v; a5 += x5 * u; a5 += x6 * v;
                a6 += x6 * u; a6 += x7 * v; a7 += x7 * u; a7 += x8 * v;
            }
        }
        const v8f acc[BLOCK] = {a0, a1, a2, a3, a4, a5, a6, a7};
        /* output rows (2 qd + rd - 1, 2 qh + rh - 1): voxels 2 qw - 1 .. 2 qw + 2 BLOCK - 2, all inside */
        for (int row = 0; row < 4; ++row) {
            const int64_t od = 2 * qd + (row >> 1) - 1, oh = 2 * qh + (row & 1) - 1;
            if (od < 0 || od >= 2 * depth || oh < 0 || oh >= oh_n)
                continue;
            float values[2 * BLOCK];
            for (int j = 0; j < BLOCK; ++j) {
                values[2 * j] = acc[j][2 * row];
                values[2 * j + 1] = acc[j][2 * row + 1];
            }
            const int64_t i = (od * oh_n + oh) * ow_n + 2 * qw - 1;
            if (residual)
                for (int k = 0; k < 2 * BLOCK; ++k)
                    out[i + k] = relu(values[k] + residual[i + k]);
            else
                for (int k = 0; k < 2 * BLOCK; ++k)
                    out[i + k] = relu(values[k]);
        }
    }
    for (int64_t qw = 0; qw <= width; qw = blocks && qw == 0 ? width : qw + 1)
        store_position(out, residual, head_position(x, rows, w, channels, width, qw, residues(z, zrow + qw * 8, bf16), bf16),
                       qd, qh, qw, depth, height, width);
}

#define DEFINE_SUBPIXEL_HEAD(name, BF16)                                                                              \
    void name(const void *x, int64_t channels, const float *w, const void *z, const float *residual, float *out,     \
              int64_t depth, int64_t height, int64_t width, int64_t begin, int64_t end)                              \
    {                                                                                                                 \
        PARALLEL_JOBS                                                                                                 \
        for (int64_t job = begin; job < end; ++job)                                                                   \
            head_row(x, channels, w, z, residual, out, depth, height, width, job, BF16);                              \
    }

DEFINE_SUBPIXEL_HEAD(subpixel_head_f32, 0)
DEFINE_SUBPIXEL_HEAD(subpixel_head_bf16, 1)
