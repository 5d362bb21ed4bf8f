/* How the kernels' job loops (PARALLEL_JOBS in elementwise.h) run: see
 * volgan/inference/cpu/native_kernels.py. */
#include "elementwise.h"

/* 1 when built with -fopenmp: then the job loops run on volgan_threads OpenMP threads (set per
 * call by the caller, as the thread count of the calling thread's PyTorch is not the OpenMP
 * default in every thread; 1: serial, for callers that split the jobs between their own threads) */
#ifdef _OPENMP
int volgan_threads = 1;
#endif

int volgan_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void volgan_set_threads(int threads)
{
#ifdef _OPENMP
    volgan_threads = threads > 1 ? threads : 1;
#else
    (void)threads;
#endif
}
