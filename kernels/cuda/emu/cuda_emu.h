// cuda_emu.h — just enough of CUDA to run this project's kernels on the CPU, for testing where no
// GPU is at hand. Every CUDA thread is a fiber (ucontext); fibers switch only at barriers,
// shuffles and spin-waits, so a thread runs alone from one barrier to the next. Running the fibers
// in several orders (forward, reverse, random) makes a missing __syncthreads or grid barrier change
// the result. What it cannot show: timing, memory-model subtleties (fences, L1 staleness: every
// access here is coherent), bank conflicts, register limits, the real cp.async/texture paths.
//
// Non-cooperative launches run one block at a time (in a shuffled order, so that split-K's
// "last block" is not always the same), which is also what makes `__shared__` → `static` correct.
// Cooperative launches run every block at once; kernels launched so must use dynamic shared
// memory only (fx_dynamic_smem()).
#pragma once
#include <ucontext.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(4) uchar4 {
    unsigned char x, y, z, w;
};
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline uchar4 make_uchar4(unsigned char a, unsigned char b, unsigned char c, unsigned char d) { return {a, b, c, d}; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

namespace emu {

struct Barrier {
    int arrived = 0;
    unsigned gen = 0;
};

struct Block {
    int nthreads = 0;
    Barrier bar;
    std::vector<Barrier> warp_bar;
    std::vector<uint64_t> xch; // one shuffle slot per thread
    unsigned char *smem = nullptr;
};

struct Fiber {
    ucontext_t ctx;
    std::unique_ptr<char[]> stack;
    uint3 tid, bid;
    int linear = 0; // thread index within the block
    Block *block = nullptr;
    bool done = false;
};

inline Fiber *cur = nullptr;
inline ucontext_t main_ctx;
inline dim3 g_grid, g_block;
inline std::function<void()> *g_body = nullptr;
inline Barrier grid_bar;
inline int grid_threads = 0;
inline unsigned long long switches = 0;
inline int order_mode = 0; // 0 forward, 1 reverse, 2 random each round
inline std::mt19937 rng(12345);
inline size_t stack_bytes = 64 * 1024;

inline void yield()
{
    switches++;
    swapcontext(&cur->ctx, &main_ctx);
}

inline void wait_barrier(Barrier &b, int n)
{
    const unsigned gen = b.gen;
    if (++b.arrived == n) {
        b.arrived = 0;
        b.gen++;
        return;
    }
    while (b.gen == gen)
        yield();
}

inline void syncthreads() { wait_barrier(cur->block->bar, cur->block->nthreads); }
inline void grid_sync() { wait_barrier(grid_bar, grid_threads); }

template <class T>
inline T shuffle_from(T v, int src_lane)
{
    Block &b = *cur->block;
    const int w = cur->linear / 32;
    static_assert(sizeof(T) <= 8, "64-bit slots");
    uint64_t slot = 0;
    memcpy(&slot, &v, sizeof v);
    b.xch[cur->linear] = slot;
    wait_barrier(b.warp_bar[w], 32);
    T r;
    const uint64_t got = b.xch[w * 32 + src_lane];
    memcpy(&r, &got, sizeof r);
    wait_barrier(b.warp_bar[w], 32); // nobody overwrites a slot before every lane has read
    return r;
}

inline void trampoline()
{
    (*g_body)();
    cur->done = true;
    swapcontext(&cur->ctx, &main_ctx);
}

inline void run(std::vector<Fiber *> &fibers)
{
    size_t alive = fibers.size();
    std::vector<size_t> order(fibers.size());
    for (size_t i = 0; i < order.size(); i++)
        order[i] = order_mode == 1 ? order.size() - 1 - i : i;
    unsigned long long rounds = 0;
    while (alive) {
        if (order_mode == 2)
            std::shuffle(order.begin(), order.end(), rng);
        for (size_t i : order) {
            Fiber *f = fibers[i];
            if (f->done)
                continue;
            cur = f;
            swapcontext(&main_ctx, &f->ctx);
            if (f->done)
                alive--;
        }
        if (++rounds > 200000000ull) {
            fprintf(stderr, "emu: no progress (a barrier some threads never reach?)\n");
            abort();
        }
    }
    cur = nullptr;
}

// (Out of line: getcontext in the launch loop made g++ warn about clobbered loop variables.)
__attribute__((noinline)) inline void init_fiber(Fiber *f, int t, dim3 block, uint3 bid, Block *bk)
{
    f->stack.reset(new char[stack_bytes]);
    f->tid = {(unsigned)(t % block.x), (unsigned)(t / block.x % block.y), (unsigned)(t / block.x / block.y)};
    f->bid = bid;
    f->linear = t;
    f->block = bk;
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack.get();
    f->ctx.uc_stack.ss_size = stack_bytes;
    f->ctx.uc_link = nullptr;
    makecontext(&f->ctx, trampoline, 0);
}

// Runs body() as every thread of grid×block. Cooperative: all blocks at once.
inline void launch(dim3 grid, dim3 block, size_t dyn_smem, bool cooperative, std::function<void()> body)
{
    g_grid = grid;
    g_block = block;
    g_body = &body;
    const int nt = (int)(block.x * block.y * block.z);
    const long nb = (long)grid.x * grid.y * grid.z;
    if (nt % 32) {
        fprintf(stderr, "emu: block size %d is not whole warps\n", nt);
        abort();
    }
    std::vector<long> block_order(nb);
    for (long i = 0; i < nb; i++)
        block_order[i] = i;
    if (!cooperative)
        std::shuffle(block_order.begin(), block_order.end(), rng);
    const long per_run = cooperative ? nb : 1;
    for (long first = 0; first < nb; first += per_run) {
        std::vector<std::unique_ptr<Block>> blocks;
        std::vector<std::unique_ptr<Fiber>> owned;
        std::vector<Fiber *> fibers;
        for (long bi = first; bi < first + per_run; bi++) {
            const long b = block_order[bi];
            blocks.emplace_back(new Block);
            Block *bk = blocks.back().get();
            bk->nthreads = nt;
            bk->warp_bar.resize(nt / 32);
            bk->xch.resize(nt);
            bk->smem = (unsigned char *)aligned_alloc(16, (dyn_smem + 15) / 16 * 16 + 16);
            memset(bk->smem, 0xA5, dyn_smem); // garbage, like real shared memory
            const uint3 bid = {(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / grid.x / grid.y)};
            for (int t = 0; t < nt; t++) {
                owned.emplace_back(new Fiber);
                init_fiber(owned.back().get(), t, block, bid, bk);
                fibers.push_back(owned.back().get());
            }
        }
        grid_bar = Barrier();
        grid_threads = (int)fibers.size();
        run(fibers);
        for (auto &bk : blocks)
            free(bk->smem);
    }
    g_body = nullptr;
}

} // namespace emu

#define threadIdx (emu::cur->tid)
#define blockIdx (emu::cur->bid)
#define blockDim (emu::g_block)
#define gridDim (emu::g_grid)

inline void __syncthreads() { emu::syncthreads(); }
inline void __threadfence() {}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask)
{
    return emu::shuffle_from(v, (emu::cur->linear % 32) ^ mask);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta)
{
    const int src = emu::cur->linear % 32 + (int)delta;
    const T other = emu::shuffle_from(v, src < 32 ? src : emu::cur->linear % 32);
    return other;
}
inline int atomicAdd(int *p, int v)
{
    const int o = *p;
    *p += v;
    return o;
}
inline unsigned atomicAdd(unsigned *p, unsigned v)
{
    const unsigned o = *p;
    *p += v;
    return o;
}
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v)
{
    const unsigned long long o = *p;
    *p += v;
    return o;
}

inline float4 fx_ldg4(const float *p) { return *reinterpret_cast<const float4 *>(p); }
inline float fx_ldg(const float *p) { return *p; }
inline float4 fx_ldcg4(const float *p) { return *reinterpret_cast<const float4 *>(p); }
inline float fx_ldcg(const float *p) { return *p; }
inline double fx_ldcg(const double *p) { return *p; }
inline unsigned long long fx_ld_acquire(const unsigned long long *p) { return *(const volatile unsigned long long *)p; }
inline void fx_grid_sync_coop() { emu::grid_sync(); }
inline unsigned char *fx_dynamic_smem() { return emu::cur->block->smem; }
#define FX_SPIN_PAUSE() emu::yield()
