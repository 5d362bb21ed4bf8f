/* The last layer of the PET U-Net in one pass: a one-channel transposed convolution with kernel 4,
 * stride 2 and padding 1 over a channels-last input, added to a partial result of the same layer,
 * plus the residual input, through a ReLU, written straight into the full-resolution output (see
 * volgan/inference/subpixel_head.py).
 *
 * In sub-pixel form (volgan/inference/subpixel.py) the layer is a stride-1 convolution with 2x2x2
 * taps over the input zero-padded by 1, whose 8 output channels are the 8 residues r = (rd, rh, rw)
 * of the output: position q of that convolution and residue r give output voxel 2 q + r - 1 on each
 * axis. Here the 8 residues of a position are one vector of 8 floats, so
 *
 *   out[2 q + r - 1] = max(z[q][r] + sum_{t, c} x[q + t - 1][c] * w[t][c][r] + residual[2 q + r - 1], 0)
 *
 * with x: (depth, height, width, channels) channels-last; w: [td][th][tw][c][8], 32-byte aligned;
 * z: (depth + 1, height + 1, width + 1, 8), 32-byte aligned, the other part's result (the bias
 * included); residual (may be NULL) and out: (2 depth, 2 height, 2 width). Job j is the row of
 * positions (qd, qh) = (j / (height + 1), j % (height + 1)); each job writes output voxels no other
 * job writes.
 *
 * Along a row, BLOCK positions at a time: the tap tw = 1 of position qw reads the input that tap
 * tw = 0 of position qw + 1 reads, so BLOCK + 1 input values and two weight vectors per channel
 * feed 2 BLOCK fused multiply-adds, in BLOCK vector accumulators. The first and last positions of
 * a row (which read the zero padding) take a bounds-checked path.
 */
#include <stdint.h>

#include "elementwise.h"

typedef float v8f __attribute__((vector_size(32)));
#define BLOCK 8

static inline v8f load8(const float *p) { return *(const v8f *)p; }

/* z[q] plus the convolution at position qw of a row (bounds-checked along the row) */
static inline v8f head_position(const float *const rows[4], const float *w, int64_t channels, int64_t width,
                                int64_t qw, v8f acc)
{
    for (int t = 0; t < 4; ++t) {
        if (!rows[t])
            continue;
        for (int tw = 0; tw < 2; ++tw) {
            const int64_t iw = qw + tw - 1;
            if (iw < 0 || iw >= width)
                continue;
            const float *x = rows[t] + iw * channels, *wt = w + (t * 2 + tw) * channels * 8;
            for (int64_t c = 0; c < channels; ++c)
                acc += x[c] * load8(wt + c * 8);
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

void subpixel_head_f32(const float *x, int64_t channels, const float *w, const float *z, const float *residual,
                       float *out, int64_t depth, int64_t height, int64_t width, int64_t begin, int64_t end)
{
    PARALLEL_JOBS
    for (int64_t job = begin; job < end; ++job) {
        const int64_t qd = job / (height + 1), qh = job % (height + 1);
        const int64_t oh_n = 2 * height, ow_n = 2 * width;
        const float *rows[4]; /* input rows (qd + td - 1, qh + th - 1), NULL in the padding */
        for (int t = 0; t < 4; ++t) {
            const int64_t id = qd + (t >> 1) - 1, ih = qh + (t & 1) - 1;
            rows[t] = id >= 0 && id < depth && ih >= 0 && ih < height ? x + (id * height + ih) * width * channels : 0;
        }
        const float *zrow = z + (qd * (height + 1) + qh) * (width + 1) * 8;
        const int blocks = width >= BLOCK + 1; /* positions 1 .. width - 1 in blocks (the last one overlapping) */
        for (int64_t next = 1; blocks && next < width; next += BLOCK) {
            const int64_t qw = next + BLOCK <= width ? next : width - BLOCK;
            v8f a0 = load8(zrow + qw * 8), a1 = load8(zrow + (qw + 1) * 8), a2 = load8(zrow + (qw + 2) * 8),
                a3 = load8(zrow + (qw + 3) * 8), a4 = load8(zrow + (qw + 4) * 8), a5 = load8(zrow + (qw + 5) * 8),
                a6 = load8(zrow + (qw + 6) * 8), a7 = load8(zrow + (qw + 7) * 8);
            for (int t = 0; t < 4; ++t) {
                if (!rows[t])
                    continue;
                const float *xr = rows[t] + (qw - 1) * channels;
                const float *w0 = w + t * 2 * channels * 8, *w1 = w0 + channels * 8;
                for (int64_t c = 0; c < channels; ++c) {
                    const v8f u = load8(w0 + c * 8), v = load8(w1 + c * 8);
                    const float x0 = xr[c], x1 = xr[channels + c], x2 = xr[2 * channels + c],
                                x3 = xr[3 * channels + c], x4 = xr[4 * channels + c], x5 = xr[5 * channels + c],
                                x6 = xr[6 * channels + c], x7 = xr[7 * channels + c], x8 = xr[8 * channels + c];
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
            store_position(out, residual, head_position(rows, w, channels, width, qw, load8(zrow + qw * 8)), qd, qh, qw,
                           depth, height, width);
    }
}
