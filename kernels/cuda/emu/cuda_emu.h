// cuda_emu.h — just enough of CUDA to run this project's kernels on the CPU, for testing where no
// GPU is at hand. Every CUDA thread is a fiber (its own stack; on x86-64 a few lines of assembly
// switch them, elsewhere ucontext — swapcontext makes a system call per switch, which was a large
// part of the run time; -DFX_EMU_UCONTEXT forces it). Fibers switch only at barriers,
// shuffles and spin-waits, so a thread runs alone from one barrier to the next. Running the fibers
// in several orders (forward, reverse, random) makes a missing __syncthreads or grid barrier change
// the result. What it cannot show: timing, memory-model subtleties (fences, L1 staleness: every
// access here is coherent), bank conflicts, register limits, the real cp.async/texture paths.
//
// Non-cooperative launches run one block at a time (in a shuffled order, so that split-K's
// "last block" is not always the same), which is also what makes `__shared__` → `static` correct.
// emu::block_order picks that order instead: forward, reverse, or the reverse of the previous
// launch's (then every group of blocks that takes a ticket finishes a different block last, which
// is what a test of "the result does not depend on which block came last" needs).
// Cooperative launches run every block at once; kernels launched so must use dynamic shared
// memory only (fx_dynamic_smem()). By default all their fibers advance in lock-step rounds (one
// switch point each per round), so no block ever gets a phase ahead of another. emu::coop_greedy
// runs them block by block instead: one block runs alone until every one of its threads is stuck
// (waiting at a barrier nobody else can open, or spinning on a flag with FX_SPIN_PAUSE), then the
// next block (in order_mode's order of blocks) does the same, and so on. Then the first block to
// reach a grid barrier passes it as soon as the last arrival lets it and runs a whole phase
// ahead before anyone else reads what the previous phase wrote, and the last block arrives after
// everybody else has been waiting: a barrier that lets a block through early, or a buffer reused
// one phase too soon, changes the result. "Stuck" is judged by the switch points: a re-check of a
// barrier that has not opened, or a FX_SPIN_PAUSE right after a FX_SPIN_PAUSE (a spin loop must
// call FX_SPIN_PAUSE once per unsuccessful check and do nothing else but check).
#pragma once
#include <ucontext.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
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

#if defined(__x86_64__) && !defined(FX_EMU_UCONTEXT)
#define FX_EMU_ASM_SWITCH 1
// fx_emu_switch(&save, to): pushes the callee-saved registers (System V: rbx, rbp, r12–r15, and
// the MXCSR and x87 control words), stores the stack pointer in save, loads `to` and pops the same.
// A local symbol, so that every translation unit has its own copy.
extern "C" void fx_emu_switch(void **save_sp, void *to_sp);
asm(R"(
    .text
    .p2align 4
    .type fx_emu_switch, @function
fx_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size fx_emu_switch, .-fx_emu_switch
)");
#endif

struct Fiber {
#ifdef FX_EMU_ASM_SWITCH
    void *sp = nullptr;
#else
    ucontext_t ctx;
#endif
    bool stalled = false;  // the last slice did nothing but re-check a wait (coop_greedy's test)
    bool spinning = false; // the last switch was a FX_SPIN_PAUSE
    std::unique_ptr<char[]> stack;
    uint3 tid, bid;
    int linear = 0; // thread index within the block
    Block *block = nullptr;
    bool done = false;
    // cp.async: copies issued since the last commit, and the committed groups not yet waited for
    // (16-byte copies: destination, source)
    std::vector<std::pair<float4 *, const float4 *>> async_open;
    std::deque<std::vector<std::pair<float4 *, const float4 *>>> async_groups;
};

inline Fiber *cur = nullptr;
#ifdef FX_EMU_ASM_SWITCH
inline void *main_sp;
#else
inline ucontext_t main_ctx;
#endif

// The scheduler (main) runs fiber f until it switches back; a fiber switches back to main.
inline void resume(Fiber *f)
{
#ifdef FX_EMU_ASM_SWITCH
    fx_emu_switch(&main_sp, f->sp);
#else
    swapcontext(&main_ctx, &f->ctx);
#endif
}
inline void to_main(Fiber *f)
{
#ifdef FX_EMU_ASM_SWITCH
    fx_emu_switch(&f->sp, main_sp);
#else
    swapcontext(&f->ctx, &main_ctx);
#endif
}
inline dim3 g_grid, g_block;
inline std::function<void()> *g_body = nullptr;
inline Barrier grid_bar;
inline int grid_threads = 0;
inline unsigned long long switches = 0;
inline int order_mode = 0; // 0 forward, 1 reverse, 2 random each round
enum { BO_SHUFFLE = 0, BO_FORWARD, BO_REVERSE, BO_REVERSE_PREVIOUS };
inline int block_order = BO_SHUFFLE;  // non-cooperative launches: order of the blocks
inline std::vector<long> last_block_order; // the order the last non-cooperative launch used
inline bool coop_greedy = false;      // cooperative launches: block by block (see the top)
inline std::mt19937 rng(12345);
inline size_t stack_bytes = 64 * 1024;

inline void yield(bool stalled = false)
{
    switches++;
    cur->stalled = stalled;
    cur->spinning = false;
    to_main(cur);
}

// A spin-wait's pause: the slice since the previous pause only re-checked the flag.
inline void spin_pause()
{
    switches++;
    cur->stalled = cur->spinning;
    cur->spinning = true;
    to_main(cur);
}

// cp.async's copy lands at some time between its issue and the wait that retires its group; the
// emulator puts it at either end (async_at_issue: at once; else: at the wait, the latest), so that a
// read of a stage before its wait, or a copy into a stage other threads still read, changes results.
inline bool async_at_issue = false;
inline void cp_async16(void *dst, const void *src)
{
    auto d = static_cast<float4 *>(dst);
    auto q = static_cast<const float4 *>(src);
    if (async_at_issue)
        *d = *q;
    else
        cur->async_open.push_back({d, q});
}
inline void cp_async_commit()
{
    cur->async_groups.push_back(std::move(cur->async_open));
    cur->async_open.clear();
}
inline void cp_async_wait(int pending)
{
    while ((int)cur->async_groups.size() > pending) {
        for (auto &c : cur->async_groups.front())
            *c.first = *c.second;
        cur->async_groups.pop_front();
    }
}

inline void wait_barrier(Barrier &b, int n)
{
    const unsigned gen = b.gen;
    if (++b.arrived == n) {
        b.arrived = 0;
        b.gen++;
        return;
    }
    bool again = false; // the first switch ends a slice that arrived: progress
    while (b.gen == gen) {
        yield(again);
        again = true;
    }
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
    to_main(cur);
}

// Runs f up to its next switch point, if it has not finished; returns whether it ran.
inline bool step(Fiber *f, size_t &alive)
{
    if (f->done)
        return false;
    cur = f;
    resume(f);
    if (f->done)
        alive--;
    return true;
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
        for (size_t i : order)
            step(fibers[i], alive);
        if (++rounds > 200000000ull) {
            fprintf(stderr, "emu: no progress (a barrier some threads never reach?)\n");
            abort();
        }
    }
    cur = nullptr;
}

// coop_greedy: fibers are nt per block, block-major. Each block in turn runs (in rounds over its
// own threads) until a round in which none of its threads made progress.
inline void run_greedy(std::vector<Fiber *> &fibers, int nt)
{
    const size_t nb = fibers.size() / nt;
    size_t alive = fibers.size();
    std::vector<size_t> border(nb), torder(nt);
    for (size_t i = 0; i < nb; i++)
        border[i] = order_mode == 1 ? nb - 1 - i : i;
    for (int i = 0; i < nt; i++)
        torder[i] = order_mode == 1 ? nt - 1 - i : i;
    while (alive) {
        if (order_mode == 2)
            std::shuffle(border.begin(), border.end(), rng);
        bool any = false;
        for (size_t b : border) {
            for (;;) {
                if (order_mode == 2)
                    std::shuffle(torder.begin(), torder.end(), rng);
                bool progress = false;
                for (size_t t : torder) {
                    Fiber *f = fibers[b * nt + t];
                    if (step(f, alive) && (f->done || !f->stalled))
                        progress = true;
                }
                if (!progress)
                    break;
                any = true;
            }
        }
        if (!any) {
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
#ifdef FX_EMU_ASM_SWITCH
    // What fx_emu_switch pops: control words, six registers, then `ret` to trampoline with the
    // stack aligned as after a call (rsp ≡ 8 mod 16).
    void **sp = (void **)(((uintptr_t)f->stack.get() + stack_bytes) & ~(uintptr_t)15);
    *--sp = nullptr; // trampoline's return address: it never returns
    *--sp = (void *)&trampoline;
    for (int i = 0; i < 6; i++)
        *--sp = nullptr;
    const uint64_t cw = 0x1F80ull | 0x037Full << 32; // MXCSR and x87 control word defaults
    *--sp = (void *)cw;
    f->sp = sp;
#else
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack.get();
    f->ctx.uc_stack.ss_size = stack_bytes;
    f->ctx.uc_link = nullptr;
    makecontext(&f->ctx, trampoline, 0);
#endif
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
    if (!cooperative) {
        if (emu::block_order == BO_REVERSE || (emu::block_order == BO_REVERSE_PREVIOUS && last_block_order.size() != (size_t)nb))
            std::reverse(block_order.begin(), block_order.end());
        else if (emu::block_order == BO_REVERSE_PREVIOUS)
            block_order.assign(last_block_order.rbegin(), last_block_order.rend());
        else if (emu::block_order == BO_SHUFFLE)
            std::shuffle(block_order.begin(), block_order.end(), rng);
        last_block_order = block_order;
    }
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
        if (cooperative && coop_greedy)
            run_greedy(fibers, nt);
        else
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
inline void fx_cp_async16(void *smem, const void *gmem) { emu::cp_async16(smem, gmem); }
inline void fx_cp_async_commit() { emu::cp_async_commit(); }
template <int N>
inline void fx_cp_async_wait() { emu::cp_async_wait(N); }
inline unsigned char *fx_dynamic_smem() { return emu::cur->block->smem; }
#define FX_SPIN_PAUSE() emu::spin_pause()
