/* A dense block's running concatenation kept as separate parts (see
 * volgan/inference/cpu/dense_parts.py): each unit's BatchNorm + ELU reads the parts it needs, and the
 * block's output is gathered from them once.
 *
 * A part holds `part_channels[p]` channels of every voxel of a (batch, depth, plane) volume, in
 * one of two layouts: channels-last (voxel v's channels at v * k), or depth-paired, as a
 * convolution computing two output depths at a time writes them (a (batch, depth / 2, plane, 2k)
 * array: depth 2i in channels [0, k) of position i, depth 2i + 1 in [k, 2k)). The output y is
 * channels-last with `channels` = the parts' channels together. Each function handles jobs
 * [begin, end) (job_segment).
 */
#include <stdint.h>

#include "elementwise.h"

/* the most parts a call takes (Python checks) */
#define MAX_PARTS 64

/* Jobs: chunks of `chunk` consecutive positions of a pair of planes (b, 2i) and (b, 2i + 1) (one
 * plane for the last of an odd depth), so that a depth-paired part is read a whole position at a
 * time. job_segment gives the positions [q0, q1) of plane bd (the job's first plane, plus `second`)
 * and each part's address of position q0 in it and its voxel stride; 0 when the job has no such
 * plane. */
static inline int64_t jobs_per_pair(int64_t plane, int64_t chunk) { return (plane + chunk - 1) / chunk; }

static inline int job_segment(const char *const *parts, const int64_t *part_channels, const int32_t *part_paired,
                              int64_t n_parts, int64_t size, int64_t depth, int64_t plane, int64_t chunk, int64_t job,
                              int second, const char **at, int64_t *stride, int64_t *bd, int64_t *q0, int64_t *q1)
{
    const int64_t per_pair = jobs_per_pair(plane, chunk), pairs = (depth + 1) / 2;
    const int64_t pair = job / per_pair, b = pair / pairs, d = 2 * (pair % pairs) + second;
    if (d >= depth)
        return 0;
    *bd = b * depth + d;
    *q0 = (job % per_pair) * chunk;
    *q1 = plane < *q0 + chunk ? plane : *q0 + chunk;
    for (int64_t p = 0; p < n_parts; ++p) {
        const int64_t k = part_channels[p];
        const int64_t offset = part_paired[p] ? ((b * (depth / 2) + d / 2) * plane + *q0) * 2 * k + (d & 1) * k
                                              : (*bd * plane + *q0) * k;
        at[p] = parts[p] + offset * size;
        stride[p] = (part_paired[p] ? 2 * k : k) * size;
    }
    return 1;
}

/* n positions of each part, from at[p] (voxel stride stride[p] bytes), concatenated into y
 * (channels values of `size` bytes per voxel); part by part, so that the common sizes (16 and 32
 * bytes: 8 or 16 bfloat16 channels) are single moves in a tight loop */
static inline void copy_segment(const char *const *at, const int64_t *stride, const int64_t *part_channels,
                                int64_t n_parts, int64_t size, char *y, int64_t channels, int64_t n)
{
    const int64_t pitch = channels * size;
    for (int64_t p = 0, offset = 0; p < n_parts; offset += part_channels[p] * size, ++p) {
        const int64_t bytes = part_channels[p] * size, step = stride[p];
        const char *restrict x = at[p];
        char *restrict yp = y + offset;
        if (bytes == 16) {
            for (int64_t v = 0; v < n; ++v)
                memcpy(yp + v * pitch, x + v * step, 16);
        } else if (bytes == 32) {
            for (int64_t v = 0; v < n; ++v)
                memcpy(yp + v * pitch, x + v * step, 32);
        } else {
            for (int64_t v = 0; v < n; ++v)
                memcpy(yp + v * pitch, x + v * step, (size_t)bytes);
        }
    }
}

/* the most values a job stages: chunk * channels */
#define PART_STAGED_VALUES 8192

/* y = ELU(scale * concat(parts) + shift); scale and shift repeated for `chunk` voxels (as in
 * affine_elu.c); arithmetic in float32, rounded once to TYPE. A segment's values are staged
 * contiguously first, so that the arithmetic runs over whole vectors for any channel count. */
#define DEFINE_AFFINE_ELU_PARTS(NAME, TYPE, LOAD, STORE)                                                           \
    void NAME(const char *const *parts, const int64_t *part_channels, const int32_t *part_paired, int64_t n_parts, \
              TYPE *y, const float *scale, const float *shift, float alpha, int64_t channels, int64_t depth,      \
              int64_t plane, int64_t chunk, int64_t begin, int64_t end)                                           \
    {                                                                                                              \
        PARALLEL_JOBS                                                                                              \
        for (int64_t job = begin; job < end; ++job)                                                                \
            for (int second = 0; second < 2; ++second) {                                                           \
                TYPE staged[PART_STAGED_VALUES];                                                                   \
                const char *at[MAX_PARTS];                                                                         \
                int64_t stride[MAX_PARTS], bd, q0, q1;                                                             \
                if (!job_segment(parts, part_channels, part_paired, n_parts, sizeof(TYPE), depth, plane, chunk,   \
                                 job, second, at, stride, &bd, &q0, &q1))                                          \
                    continue;                                                                                      \
                const int64_t n = q1 - q0;                                                                         \
                copy_segment(at, stride, part_channels, n_parts, sizeof(TYPE), (char *)staged, channels, n);     \
                TYPE *restrict ys = y + (bd * plane + q0) * channels;                                              \
                IVDEP                                                                                              \
                for (int64_t i = 0; i < n * channels; ++i)                                                         \
                    ys[i] = STORE(affine_elu(LOAD(staged[i]), scale[i], shift[i], alpha));                         \
            }                                                                                                      \
    }

DEFINE_AFFINE_ELU_PARTS(affine_elu_parts_f32, float, f32_to_float, float_to_f32)
DEFINE_AFFINE_ELU_PARTS(affine_elu_parts_bf16, uint16_t, bf16_to_float, float_to_bf16)

/* y = concat(parts), values of `size` bytes (any type) */
void gather_parts(const char *const *parts, const int64_t *part_channels, const int32_t *part_paired, int64_t n_parts,
                  char *y, int64_t size, int64_t channels, int64_t depth, int64_t plane, int64_t chunk, int64_t begin,
                  int64_t end)
{
    PARALLEL_JOBS
    for (int64_t job = begin; job < end; ++job)
        for (int second = 0; second < 2; ++second) {
            const char *at[MAX_PARTS];
            int64_t stride[MAX_PARTS], bd, q0, q1;
            if (!job_segment(parts, part_channels, part_paired, n_parts, size, depth, plane, chunk, job, second, at,
                             stride, &bd, &q0, &q1))
                continue;
            copy_segment(at, stride, part_channels, n_parts, size, y + (bd * plane + q0) * channels * size, channels,
                         q1 - q0);
        }
}
