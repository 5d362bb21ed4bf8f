/* Element-wise helpers shared by the C sources in this folder. */
#ifndef VOLGAN_ELEMENTWISE_H
#define VOLGAN_ELEMENTWISE_H

#include <stdint.h>
#include <string.h>

/* the channel loops read and write distinct buffers */
#if defined(__clang__)
#define IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define IVDEP _Pragma("GCC ivdep")
#else
#define IVDEP
#endif

/* the job loops: split between the threads of the OpenMP runtime when built with -fopenmp (the
 * runtime PyTorch already runs its convolutions on, see volgan/inference/cpu/native_kernels.py),
 * else the caller splits [begin, end) between its own threads */
#ifdef _OPENMP
extern int volgan_threads; /* threads of the job loops; 1: the caller's thread only (see parallel.c) */
#define PARALLEL_JOBS _Pragma("omp parallel for schedule(static) num_threads(volgan_threads) if(volgan_threads > 1)")
#else
#define PARALLEL_JOBS
#endif

/* float32 <-> bfloat16 (round to nearest even, NaN stays a quiet NaN), and the float32 identity */
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

static inline float f32_to_float(float v) { return v; }
static inline float float_to_f32(float f) { return f; }

/* exp(x) for x <= 0 (clamped at -87): 2^n * 2^f with n = round(x log2 e), |f| <= 1/2, and a
 * degree-6 Taylor polynomial of 2^f (relative error about 1.2e-7). Written without branches or
 * library calls so that compilers vectorise the loops that use it. */
static inline float exp_nonpositive(float x)
{
    x = x < -87.0f ? -87.0f : x;
    float t = x * 1.44269504088896341f;
    float r = t + 12582912.0f; /* 1.5 * 2^23: rounds t to the nearest integer */
    float n = r - 12582912.0f;
    float f = t - n;
    int32_t bits;
    memcpy(&bits, &r, sizeof bits);
    int32_t scale_bits = (bits - 0x4B400000 + 127) << 23; /* 2^n as a float */
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    float p = 1.540353039e-4f;
    p = p * f + 1.333355815e-3f;
    p = p * f + 9.618129108e-3f;
    p = p * f + 5.550410866e-2f;
    p = p * f + 2.402265070e-1f;
    p = p * f + 6.931471806e-1f;
    p = p * f + 1.0f;
    return p * scale;
}

/* ELU(scale * x + shift) with ELU's alpha; a NaN stays NaN. */
static inline float affine_elu(float x, float scale, float shift, float alpha)
{
    float z = x * scale + shift;
    float e = alpha * (exp_nonpositive(z < 0.0f ? z : 0.0f) - 1.0f);
    return z <= 0.0f ? e : z;
}

#endif
