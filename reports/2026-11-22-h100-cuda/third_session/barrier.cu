// Microbenchmark: cost of a dependent phase boundary on this GPU.
// A: graph of NPH kernels with PDL; B: same without PDL; C: one persistent kernel with NPH grid barriers.
#include <cstdio>
#include <cuda_runtime.h>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); return 1; } } while (0)
constexpr int NPH = 150;

__device__ __forceinline__ void work(float* buf, int G, int phase, int b) {
    // read a value another block wrote in the previous phase, write ours
    float v = __ldcg(buf + ((phase & 1) ? 0 : 4096) + (b + 1) % G);
    __syncthreads();
    if (threadIdx.x == 0) __stcg(buf + ((phase & 1) ? 4096 : 0) + b, v + 1.0f);
}

__global__ void k_phase(float* buf, int G, int phase, int pdl) {
    if (pdl) { asm volatile("griddepcontrol.wait;" ::: "memory"); asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
    work(buf, G, phase, blockIdx.x);
}

__device__ __forceinline__ unsigned ld_acq(const unsigned* p) {
    unsigned v; asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory"); return v;
}
__device__ __forceinline__ void grid_barrier(unsigned* cnt, unsigned target) {
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(cnt, 1u);
        while (ld_acq(cnt) < target) {}
    }
    __syncthreads();
}
__device__ __forceinline__ void grid_barrier_red(unsigned* cnt, unsigned target) {
    __syncthreads();
    if (threadIdx.x == 0) {
        asm volatile("red.release.gpu.global.add.u32 [%0], 1;" :: "l"(cnt) : "memory");
        while (ld_acq(cnt) < target) {}
    }
    __syncthreads();
}
__global__ void k_persist(float* buf, int G, unsigned* cnt, int red) {
    for (int p = 0; p < NPH; ++p) {
        work(buf, G, p, blockIdx.x);
        if (red) grid_barrier_red(cnt, (p + 1) * gridDim.x); else grid_barrier(cnt, (p + 1) * gridDim.x);
    }
}

int main() {
    float* buf; unsigned* cnt;
    CK(cudaMalloc(&buf, 8192 * 4)); CK(cudaMemset(buf, 0, 8192 * 4));
    CK(cudaMalloc(&cnt, 4));
    cudaStream_t s; CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
    int Gs[] = {36, 132, 264, 396};
    for (int G : Gs) {
        for (int mode = 0; mode < 2; ++mode) {  // 0: no PDL, 1: PDL
            cudaGraph_t g; cudaGraphExec_t ge;
            CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
            for (int p = 0; p < NPH; ++p) {
                cudaLaunchConfig_t cfg = {};
                cfg.gridDim = G; cfg.blockDim = 256; cfg.stream = s;
                cudaLaunchAttribute at[1];
                at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
                at[0].val.programmaticStreamSerializationAllowed = 1;
                cfg.attrs = at; cfg.numAttrs = mode;
                CK(cudaLaunchKernelEx(&cfg, k_phase, buf, G, p, mode));
            }
            CK(cudaStreamEndCapture(s, &g));
            CK(cudaGraphInstantiate(&ge, g, 0));
            for (int w = 0; w < 3; ++w) CK(cudaGraphLaunch(ge, s));
            float best = 1e9;
            for (int r = 0; r < 7; ++r) {
                cudaEventRecord(e0, s); CK(cudaGraphLaunch(ge, s)); cudaEventRecord(e1, s);
                CK(cudaEventSynchronize(e1)); float ms; cudaEventElapsedTime(&ms, e0, e1); if (ms < best) best = ms;
            }
            printf("G=%3d %-8s %.3f us/phase\n", G, mode ? "pdl" : "plain", best * 1000 / NPH);
        }
        for (int red = 0; red < 2; ++red) {
            float best = 1e9;
            for (int r = 0; r < 8; ++r) {
                CK(cudaMemsetAsync(cnt, 0, 4, s));
                cudaEventRecord(e0, s);
                k_persist<<<G, 256, 0, s>>>(buf, G, cnt, red);
                cudaEventRecord(e1, s);
                CK(cudaEventSynchronize(e1)); float ms; cudaEventElapsedTime(&ms, e0, e1); if (r > 0 && ms < best) best = ms;
            }
            printf("G=%3d persist%s %.3f us/phase\n", G, red ? "-red" : "", best * 1000 / NPH);
        }
    }
    return 0;
}
