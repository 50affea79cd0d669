// emu_test.cpp — the CUDA kernels of kernels/cuda/, compiled for the CPU (cuda_emu.h) and checked
// against double-precision references: SGEMM (every config, op, epilogue, split-K, unaligned
// operands, the check suite's shapes; the fast loads against the general ones bit for bit), the loss
// kernel, the fused middle of the cuda step (midstep.cuh), and the persistent whole-loop kernel
// (both barriers, both reductions, 1 and 2 hidden units per block, x partly outside shared memory).
// Thread orders forward, reverse and random must all pass. Run by kernels/cuda/emu/run (no GPU needed).
//
// Determinism: the project promises the same bits on every run. So every split-K SGEMM is run a
// second time with its blocks in the reverse of the first run's order (every tile then finishes a
// different K slice last) and C compared bitwise; the loss kernel likewise in forward, reverse and
// shuffled block order; the persistent kernel in lock-step and in "greedy block" scheduling
// (cuda_emu.h: a block runs a phase ahead of the others, the last one arrives late) with bitwise
// equal losses and weights. SGEMM also runs on small-integer data, where every sum is exact and
// some outputs are exactly 0 (so ReLU's mask at 0, h ≥ 0, is checked), and the grid barriers
// alone with one block arriving late.
//
// emu_test [--quick] [--only loss|sgemm|exact|persistent|barrier|mid]
//
// What passing means: the index math, bounds, barrier placement and cross-block protocols are right
// for these sizes. What it does not mean: anything about timing, the memory model, or nvcc's code.
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>
#include "../elementwise.cuh"
#include "../midstep.cuh"
#include "../persistent.cuh"
#include "../sgemm.cuh"

using namespace fx;

static int failures, passes;
static std::mt19937_64 gen(7);
static const char *only; // --only SECTION: run just that section
static bool section(const char *name) { return !only || !strcmp(only, name); }

static float randn()
{
    static std::normal_distribution<float> d(0.f, 1.f);
    return d(gen);
}

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL  " __VA_ARGS__);                                                          \
            printf("\n");                                                                          \
            failures++;                                                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)

// ---- SGEMM ------------------------------------------------------------------------------------

template <class C>
static void launch_sgemm(fx_op op, fx_epilogue epi, const SgemmParams &p, const SgemmPlan &pl)
{
    std::function<void()> body;
    const bool fast = pl.fast, async_b = pl.async_b;
#define EMU_CASE(O, E)                                                                             \
    if (op == O && epi == E)                                                                       \
        body = [p, fast, async_b] {                                                                \
            if (async_b)                                                                           \
                sgemm_kernel<C, O, E, true, true>(p);                                              \
            else if (fast)                                                                         \
                sgemm_kernel<C, O, E, true>(p);                                                    \
            else                                                                                   \
                sgemm_kernel<C, O, E, false>(p);                                                   \
        };
    EMU_CASE(FX_NN, FX_EPI_STORE) EMU_CASE(FX_NN, FX_EPI_RELU_MASK) EMU_CASE(FX_NN, FX_EPI_MASK)
    EMU_CASE(FX_NN, FX_EPI_SGD) EMU_CASE(FX_NT, FX_EPI_STORE) EMU_CASE(FX_NT, FX_EPI_RELU_MASK)
    EMU_CASE(FX_NT, FX_EPI_MASK) EMU_CASE(FX_NT, FX_EPI_SGD) EMU_CASE(FX_TN, FX_EPI_STORE)
    EMU_CASE(FX_TN, FX_EPI_RELU_MASK) EMU_CASE(FX_TN, FX_EPI_MASK) EMU_CASE(FX_TN, FX_EPI_SGD)
#undef EMU_CASE
    emu::launch(dim3(pl.tiles, pl.splits), dim3(C::THREADS), 0, false, body);
}

static const SgemmMachine H200 = {132, {1, 4, 8, 2, 2, 1}}; // large2, large-bk8: 128 registers × 256 threads

// One case: cfg (or -1: the heuristic), splits (≤ 0: the plan's choice), misalign: operands offset
// by one float so the 16-byte paths are off.
// ints: small integers in A, B (and C for SGD), rows i ≡ 2 (mod 5) of op(A) and columns j ≡ 3
// (mod 7) of op(B) zero: every sum is exact (checked exactly) and some outputs are exactly 0.
static void gemm_case(fx_op op, fx_epilogue epi, long m, long n, long k, int cfg, int splits, bool misalign,
                      bool ints = false)
{
    std::vector<float> a(m * k + 4), b(k * n + 4), c(m * n + 4), c0(m * n);
    std::vector<uint8_t> mask(m * n + 4), mask_in(m * n);
    const int off = misalign ? 1 : 0;
    float *A = a.data() + off, *B = b.data() + off, *Cp = c.data() + off;
    auto val = [ints](int r) { return ints ? (float)((int)(gen() % (2 * r + 1)) - r) : randn(); };
    for (long i = 0; i < m * k; i++)
        A[i] = val(2);
    for (long i = 0; i < k * n; i++)
        B[i] = val(2);
    if (ints)
        for (long q = 0; q < k; q++) {
            for (long i = 2; i < m; i += 5)
                A[op == FX_TN ? q * m + i : i * k + q] = 0.f;
            for (long j = 3; j < n; j += 7)
                B[op == FX_NT ? j * k + q : q * n + j] = 0.f;
        }
    for (float &v : c)
        v = 12345.f; // guards around C
    for (uint8_t &v : mask)
        v = 0x5A;
    for (long i = 0; i < m * n; i++) {
        c0[i] = val(8);
        mask_in[i] = gen() & 1;
        Cp[i] = epi == FX_EPI_SGD ? c0[i] : NAN;
        mask[i] = epi == FX_EPI_MASK ? mask_in[i] : 0xAA;
    }
    const std::vector<float> c_init = c;
    const std::vector<uint8_t> mask_init = mask;
    SgemmPlan pl = cfg < 0 ? sgemm_choose(m, n, k, H200) : sgemm_plan_for(cfg, splits, m, n, k);
    sgemm_plan_vectors(pl, op, m, n, k, A, B, Cp, mask.data());
    std::vector<float> ws(pl.ws_floats + 4, NAN);
    std::vector<int> counters(pl.tiles, 0);
    const float lr = 0.5f;
    fx_gemm_args g = {op, epi, m, n, k, A, B, Cp, mask.data(), lr};
    SgemmParams p = sgemm_params(pl, g, ws.data(), counters.data());
    auto launch = [&] {
        switch (pl.cfg) {
        case FX_CFG_LARGE: launch_sgemm<CfgLarge>(op, epi, p, pl); break;
        case FX_CFG_MID: launch_sgemm<CfgMid>(op, epi, p, pl); break;
        case FX_CFG_LARGE2: launch_sgemm<CfgLarge2>(op, epi, p, pl); break;
        case FX_CFG_LARGE_BK8: launch_sgemm<CfgLargeBk8>(op, epi, p, pl); break;
        case FX_CFG_LARGE_ASYNC: launch_sgemm<CfgLarge>(op, epi, p, pl); break;
        default: launch_sgemm<CfgSmall>(op, epi, p, pl); break;
        }
    };
    static const char *on[] = {"nn", "nt", "tn"}, *en[] = {"store", "relu_mask", "mask", "sgd"};
    char what[160];
    snprintf(what, sizeof what, "sgemm %s %s %ldx%ldx%ld cfg %s split %d (%d) vec %d%d%d%s%s%s", on[op], en[epi], m,
             n, k, fx_cfg_name[pl.cfg], pl.splits, pl.kchunk, pl.vec_a, pl.vec_b, pl.vec_c, pl.fast ? " fast" : "",
             pl.async_b ? " cp.async" : "", ints ? " ints" : "");
    if (pl.fast) {
        // The fast loads (clamped addresses, no predicates) must give the general loader's bits:
        // run the general kernel first, then the fast one from the same start, and compare.
        const int async_b = pl.async_b;
        pl.fast = pl.async_b = 0;
        launch();
        const std::vector<float> cg = c;
        const std::vector<uint8_t> mg = mask;
        auto fast_again = [&](const char *how) {
            std::copy(c_init.begin(), c_init.end(), c.begin());
            std::copy(mask_init.begin(), mask_init.end(), mask.begin());
            launch();
            EXPECT(!memcmp(cg.data(), c.data(), c.size() * sizeof(float)) && mg == mask,
                   "%s: C or mask differs bitwise between the %s and the general loads", what, how);
        };
        pl.fast = 1;
        if (async_b) {
            // cp.async's copies landing as late as allowed (at the wait), then as early (at issue):
            // a stage read before its wait, or refilled while another thread reads it, shows
            pl.async_b = 1;
            fast_again("cp.async (landing at the wait)");
            emu::async_at_issue = true;
            fast_again("cp.async (landing at issue)");
            emu::async_at_issue = false;
        } else {
            fast_again("fast");
        }
    } else {
        launch();
    }
    if (pl.splits > 1) {
        // Again with the blocks in the reverse order: each tile's last slice is another one.
        // Reproducible means the same bits whichever slice sums the partials.
        const std::vector<float> c1 = c;
        const std::vector<uint8_t> mask1 = mask;
        std::copy(c_init.begin(), c_init.end(), c.begin());
        std::copy(mask_init.begin(), mask_init.end(), mask.begin());
        const int saved = emu::block_order;
        emu::block_order = emu::BO_REVERSE_PREVIOUS;
        launch();
        emu::block_order = saved;
        EXPECT(!memcmp(c1.data(), c.data(), c.size() * sizeof(float)) && mask1 == mask,
               "%s: C or mask differs bitwise when other K slices finish last (not reproducible)", what);
    }
    for (int t = 0; t < pl.tiles; t++)
        EXPECT(counters[t] == 0, "%s: split-K ticket of tile %d left at %d", what, t, counters[t]);
    for (int i = 0; i < 4 - off; i++)
        EXPECT(Cp[m * n + i] == 12345.f && mask[m * n + i] == 0x5A, "%s: wrote past the end of C or mask", what);
    if (off)
        EXPECT(c[0] == 12345.f, "%s: wrote before C", what);
    long zeros = 0;
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            double acc = 0, mag = 0;
            for (long q = 0; q < k; q++) {
                const double av = op == FX_TN ? A[q * m + i] : A[i * k + q];
                const double bv = op == FX_NT ? B[j * k + q] : B[q * n + j];
                acc += av * bv;
                mag += fabs(av * bv);
            }
            const double tol = ints ? 0 : k * FLT_EPSILON * mag + FLT_MIN; // ints: exact
            const long x = i * n + j;
            const float got = Cp[x];
            EXPECT(std::isfinite(got), "%s: C[%ld,%ld] = %g", what, i, j, got);
            double want = acc, etol = tol;
            if (epi == FX_EPI_RELU_MASK) {
                EXPECT(mask[x] == 0 || mask[x] == 1, "%s: mask[%ld,%ld] = %d", what, i, j, mask[x]);
                EXPECT(!((acc > tol && !mask[x]) || (acc < -tol && mask[x])), "%s: mask[%ld,%ld] wrong", what, i, j);
                EXPECT(mask[x] || got == 0.f, "%s: C[%ld,%ld] nonzero under mask 0", what, i, j);
                if (ints && acc == 0) { // exact: h = 0 is mask 1 (h ≥ 0), h_relu 0
                    zeros++;
                    EXPECT(mask[x] == 1 && got == 0.f, "%s: C[%ld,%ld] exactly 0: mask %d, C %g (want 1, 0)", what,
                           i, j, mask[x], got);
                }
                want = acc > 0 ? acc : 0;
            } else if (epi == FX_EPI_MASK) {
                if (!mask_in[x]) {
                    EXPECT(got == 0.f, "%s: C[%ld,%ld] = %g masked out", what, i, j, got);
                    continue;
                }
            } else if (epi == FX_EPI_SGD) {
                want = c0[x] - (double)lr * acc;
                etol = ints ? 0 : lr * tol + 2.0 * FLT_EPSILON * (fabs(c0[x]) + fabs(lr * acc)) + FLT_MIN;
            }
            EXPECT(fabs(got - want) <= etol, "%s: C[%ld,%ld] = %.9g, want %.9g (tol %.3g)", what, i, j, got, want,
                   etol);
        }
    EXPECT(!ints || epi != FX_EPI_RELU_MASK || m < 3 || n < 4 || zeros > 0, "%s: no exact zero to check", what);
    passes++;
}

static const long shapes[][3] = {
    {1, 1, 1},       {1, 1, 7},      {7, 1, 1},       {1, 9, 1},      {2, 3, 4},
    {7, 13, 29},     {13, 7, 31},    {17, 19, 23},    {31, 37, 41},   {61, 67, 71},
    {64, 100, 1000}, {64, 10, 100},  {100, 10, 64},   {64, 100, 10},  {1000, 100, 64},
    {33, 65, 17},    {127, 129, 67}, {255, 257, 3},   {5, 300, 511},  {300, 5, 257},
    {96, 96, 96},    {128, 128, 128}, {129, 127, 385}, {47, 513, 15},  {1, 1000, 33},
    {1000, 1, 33},   {65, 1, 1000},  {16, 16, 1},     {257, 31, 2},   {97, 211, 389},
    {1030, 40, 70},  {40, 1029, 50}, {50, 60, 1100},  {256, 256, 256}, {1024, 96, 48},
};
static const int nshapes = sizeof shapes / sizeof shapes[0];

static void test_sgemm(bool quick)
{
    const fx_op ops[] = {FX_NN, FX_NT, FX_TN};
    // STORE on every shape, every op, every config with its own split, and the heuristic's plan.
    for (int s = 0; s < nshapes; s++) {
        const long *sh = shapes[s];
        if (quick && sh[0] * sh[1] * sh[2] > 2000000)
            continue;
        for (fx_op op : ops) {
            gemm_case(op, FX_EPI_STORE, sh[0], sh[1], sh[2], -1, 0, false);
            for (int cfg = 0; cfg < FX_NCFG_ALL; cfg++)
                gemm_case(op, FX_EPI_STORE, sh[0], sh[1], sh[2], cfg, 1, false);
        }
    }
    // Every epilogue, op and config, with and without split-K, aligned and not, on smaller shapes.
    const long small[][3] = {{1, 1, 1}, {7, 13, 29}, {33, 65, 17}, {64, 100, 1000}, {100, 10, 64}, {64, 100, 10},
                             {129, 127, 385}, {255, 257, 3}, {16, 16, 64},
                             // the fast loads: M, N past the tile (clamped rows and column groups),
                             // a partial last K tile, and K contiguous with M or N not a multiple of 4
                             {36, 20, 52}, {131, 260, 100}, {7, 13, 36}};
    for (auto &sh : small)
        for (fx_op op : ops)
            for (int epi = 0; epi < 4; epi++)
                for (int cfg = 0; cfg < FX_NCFG_ALL; cfg++)
                    for (int splits : {1, 3, 7})
                        for (bool mis : {false, true}) {
                            if (quick && cfg != FX_CFG_SMALL && (mis || (splits == 3 && cfg != FX_CFG_LARGE_ASYNC)))
                                continue; // (cp.async's 3 slices: 16x16x64 as 2 slices of 2 K tiles)
                            if (quick && cfg >= FX_NCFG && cfg != FX_CFG_LARGE_ASYNC && splits != 1)
                                continue; // their split-K, under --quick: in the exact test's first order
                                          // (cp.async's: here too, for pipelines of 1 and 2 K tiles)
                            gemm_case(op, (fx_epilogue)epi, sh[0], sh[1], sh[2], cfg, splits, mis);
                        }
}

// Small-integer data: exact sums, outputs exactly 0 (ReLU's mask there must be 1), on the 16-byte
// epilogue (n % 4 == 0, aligned) and the scalar one, without and with split-K.
static void test_sgemm_exact(bool quick)
{
    const fx_op ops[] = {FX_NN, FX_NT, FX_TN};
    const long sh[][3] = {{16, 16, 64}, {7, 13, 29}, {33, 65, 17}, {64, 100, 1000}, {40, 36, 200}};
    for (auto &s : sh)
        for (fx_op op : ops)
            for (int epi = 0; epi < 4; epi++)
                for (int cfg = 0; cfg < FX_NCFG_ALL; cfg++)
                    for (int splits : {1, 3, 7})
                        for (bool mis : {false, true}) {
                            if (cfg != FX_CFG_SMALL && (quick || mis))
                                continue; // (the experiments too: their epilogues are 128x128's)
                            if ((epi == FX_EPI_STORE || epi == FX_EPI_SGD) && (quick || splits == 3))
                                continue; // the masks are what needs exact zeros
                            gemm_case(op, (fx_epilogue)epi, s[0], s[1], s[2], cfg, splits, mis, true);
                        }
}

static void print_plans()
{
    const long sz[][3] = {{64, 100, 1000}, {64, 10, 100}, {64, 100, 10}, {100, 10, 64}, {1000, 100, 64},
                          {1024, 1024, 1024}, {4096, 4096, 4096}, {1024, 4096, 4096}, {1024, 1024, 4096},
                          {4096, 4096, 1024}, {4096, 1024, 1024}, {2048, 2048, 2048}, {256, 256, 256}};
    printf("plans (132 SMs; occupancy 1/4/8 blocks per SM as ptxas reports):\n");
    for (auto &s : sz) {
        SgemmPlan p = sgemm_choose(s[0], s[1], s[2], H200);
        printf("  %5ldx%5ldx%5ld  %-8s tiles %5d  splits %2d  kchunk %5d\n", s[0], s[1], s[2], fx_cfg_name[p.cfg],
               p.tiles, p.splits, p.kchunk);
    }
}

// ---- loss kernel --------------------------------------------------------------------------------

static void test_loss()
{
    // Three runs: blocks forward (the last block to finish is the last one), reverse (block 0),
    // shuffled. The result must not depend on which block adds the partials.
    for (long n : {1L, 7L, 640L, 1000L, 2049L, 4097L, 6145L, 10241L, 16385L, 30001L, 65537L, 100003L, 131073L, 262149L}) {
        std::vector<float> yp(n), y(n), g(n, NAN);
        for (long i = 0; i < n; i++)
            yp[i] = 30 * randn(), y[i] = randn();
        std::vector<double> partials(FX_LOSS_MAX_BLOCKS, NAN), loss(4, NAN);
        unsigned ticket = 0;
        int step = 1;
        double got[3];
        const int orders[3] = {emu::BO_FORWARD, emu::BO_REVERSE, emu::BO_SHUFFLE};
        for (int rep = 0; rep < 3; rep++) {
            LossGradParams p = {n, yp.data(), y.data(), g.data(), partials.data(), &ticket, loss.data(), &step};
            emu::block_order = orders[rep];
            emu::launch(dim3(loss_grad_blocks(n)), dim3(FX_EW_THREADS), 0, false, [p] { loss_grad_kernel(p); });
            emu::block_order = emu::BO_SHUFFLE;
            got[rep] = loss[1 + rep];
        }
        double want = 0;
        for (long i = 0; i < n; i++) {
            const double d = (double)yp[i] - y[i];
            want += d * d;
            EXPECT(fabs(g[i] - 2 * d) <= 2 * FLT_EPSILON * fabs(d) + FLT_MIN, "loss_grad n=%ld: g[%ld]", n, i);
        }
        EXPECT(step == 4 && ticket == 0, "loss_grad n=%ld: step %d ticket %u", n, step, ticket);
        EXPECT(fabs(got[0] - want) <= (n + 2) * FLT_EPSILON * want, "loss_grad n=%ld: %.9g vs %.9g", n, got[0], want);
        EXPECT(!memcmp(&got[0], &got[1], sizeof(double)) && !memcmp(&got[0], &got[2], sizeof(double)),
               "loss_grad n=%ld (%d blocks): not reproducible: %a (block %d last) %a (block 0 last) %a (shuffled)", n,
               loss_grad_blocks(n), got[0], loss_grad_blocks(n) - 1, got[1], got[2]);
        passes++;
    }
}

// ---- the fused middle of the cuda step (midstep.cuh) ---------------------------------------------

// Against the middle in double, with error bounds propagated from each float sum's own bound; then
// the same bits in every thread order (the first order's results are kept per size).
static const long H100_OPTIN = 227 * 1024; // cudaDevAttrMaxSharedMemoryPerBlockOptin of sm_90

static void mid_case(int N, int H, int O, float lr)
{
    char what[96];
    snprintf(what, sizeof what, "mid_step %dx%dx%d", N, H, O);
    EXPECT(mid_step_fits(N, H, O, H100_OPTIN), "%s: does not fit", what);
    std::vector<float> hr(N * H), y(N * O), w2(H * O), w2_0, gh(N * H + 4, NAN);
    std::vector<uint8_t> mask(N * H);
    std::mt19937_64 lg(N * 1000003L + H * 1009L + O); // the same data in every thread order
    std::normal_distribution<float> nd;
    for (int i = 0; i < N * H; i++) {
        const float v = nd(lg);
        hr[i] = v > 0 ? v : 0.f;
        mask[i] = v >= 0 || (lg() & 1); // also 1 where h_relu is 0 (h = 0 exactly gives mask 1)
    }
    for (float &v : y)
        v = nd(lg);
    for (float &v : w2)
        v = nd(lg);
    w2_0 = w2;
    std::vector<double> loss(3, NAN);
    int step = 1;
    MidStepParams p;
    p.n = N, p.h = H, p.o = O, p.lr = lr;
    p.h_relu = hr.data(), p.y = y.data(), p.mask = mask.data(), p.w2 = w2.data(), p.gh = gh.data();
    p.loss = loss.data(), p.step = &step;
    p.L = mid_step_layout(N, H, O);
    bool have = mid_step_dispatch(p.L.op, [&](void (*k)(MidStepParams)) {
        emu::launch(dim3(1), dim3(FX_MID_THREADS), p.L.floats * sizeof(float), false, [p, k] { k(p); });
    });
    EXPECT(have, "%s: no instance for padded D_out %d", what, p.L.op);
    EXPECT(step == 2 && std::isnan(loss[0]) && std::isnan(loss[2]), "%s: step %d, loss written elsewhere", what, step);
    EXPECT(std::isnan(gh[N * H]), "%s: wrote past the end of gh", what);
    const double eps = FLT_EPSILON;
    std::vector<double> g(N * O), eg(N * O);
    double want_loss = 0, loss_tol = 0;
    for (int r = 0; r < N; r++)
        for (int o = 0; o < O; o++) {
            double yp = 0, mag = 0;
            for (int j = 0; j < H; j++)
                yp += (double)hr[r * H + j] * w2_0[j * O + o], mag += fabs((double)hr[r * H + j] * w2_0[j * O + o]);
            const double d = yp - y[r * O + o], ed = (H + 2) * eps * mag + eps * fabs(d) + FLT_MIN;
            g[r * O + o] = 2 * d, eg[r * O + o] = 2 * ed;
            want_loss += d * d, loss_tol += 2 * fabs(d) * ed + ed * ed;
        }
    loss_tol += (N * O + 2) * DBL_EPSILON * want_loss;
    EXPECT(fabs(loss[1] - want_loss) <= loss_tol, "%s: loss %.17g, want %.17g (tol %.3g)", what, loss[1], want_loss,
           loss_tol);
    for (int r = 0; r < N; r++)
        for (int j = 0; j < H; j++) {
            double want = 0, mag = 0, prop = 0;
            for (int o = 0; o < O; o++) {
                want += g[r * O + o] * w2_0[j * O + o], mag += fabs(g[r * O + o] * w2_0[j * O + o]);
                prop += fabs(w2_0[j * O + o]) * eg[r * O + o];
            }
            const float got = gh[r * H + j];
            if (!mask[r * H + j]) {
                EXPECT(got == 0.f, "%s: gh[%d,%d] = %g under mask 0", what, r, j, got);
                continue;
            }
            const double tol = prop + (O + 1) * eps * (mag + prop) + FLT_MIN;
            EXPECT(fabs(got - want) <= tol, "%s: gh[%d,%d] = %.9g, want %.9g (tol %.3g)", what, r, j, got, want, tol);
        }
    for (int j = 0; j < H; j++)
        for (int o = 0; o < O; o++) {
            double sum = 0, mag = 0, prop = 0;
            for (int r = 0; r < N; r++) {
                sum += hr[r * H + j] * g[r * O + o], mag += fabs(hr[r * H + j] * g[r * O + o]);
                prop += fabs(hr[r * H + j]) * eg[r * O + o];
            }
            const double want = w2_0[j * O + o] - (double)lr * sum;
            const double tol = lr * (prop + (N + 1) * eps * (mag + prop)) +
                               2 * eps * (fabs(w2_0[j * O + o]) + lr * fabs(sum)) + FLT_MIN;
            const float got = w2[j * O + o];
            EXPECT(fabs(got - want) <= tol, "%s: w2[%d,%d] = %.9g, want %.9g (tol %.3g)", what, j, o, got, want, tol);
        }
    // Reproducible: the same bits in every thread order.
    static std::map<std::string, std::vector<float>> first;
    std::vector<float> bits(gh.begin(), gh.begin() + N * H);
    bits.insert(bits.end(), w2.begin(), w2.end());
    float lb[2];
    memcpy(lb, &loss[1], sizeof(double));
    bits.insert(bits.end(), lb, lb + 2);
    auto it = first.find(what);
    if (it == first.end())
        first[what] = bits;
    else
        EXPECT(!memcmp(it->second.data(), bits.data(), bits.size() * sizeof(float)),
               "%s: gh, w2 or the loss differ bitwise from the first thread order", what);
    passes++;
}

static void test_mid(bool quick)
{
    mid_case(64, 100, 10, 1e-3f);  // the tutorial's size
    mid_case(1, 1, 1, 0.5f);
    mid_case(7, 13, 3, 1e-2f);
    mid_case(33, 65, 16, 1e-2f);   // D_out at the limit, H odd
    if (!quick) {
        mid_case(130, 50, 5, 1e-2f);  // N over 128: fewer j-slices
        mid_case(700, 20, 4, 1e-3f);  // N over the block: rows loop
        mid_case(3, 600, 2, 1e-3f);   // H over the block: columns loop
        mid_case(512, 60, 5, 1e-3f);  // near the shared-memory limit
    }
    // What must not fit: D_out over the registers, too much work, too much shared memory.
    const long o = H100_OPTIN;
    EXPECT(!mid_step_fits(64, 100, 17, o) && !mid_step_fits(256, 1000, 10, o) && !mid_step_fits(4000, 40, 1, o) &&
               mid_step_fits(64, 100, 10, o) && !mid_step_fits(1L << 30, 1L << 30, 1, o) &&
               mid_step_fits(130, 67, 13, o) && !mid_step_fits(130, 67, 13, 48 * 1024) &&
               !mid_step_fits(64, 100, 10, 48 * 1024) && mid_step_fits(64, 100, 10, 99 * 1024) &&
               !mid_step_fits(48, 40, 17, o),
           "mid_step_fits: wrong verdicts");
    passes++;
}

// ---- persistent kernel ------------------------------------------------------------------------------

// The tutorial's loop in double: losses[steps], final w1, w2.
static void ref_loop(int N, int Din, int H, int Dout, double lr, int steps, const std::vector<float> &x,
                     const std::vector<float> &y, std::vector<double> &w1, std::vector<double> &w2,
                     std::vector<double> &losses)
{
    std::vector<double> h(N * H), hr(N * H), yp(N * Dout), g(N * Dout), gh(N * H);
    for (int t = 0; t < steps; t++) {
        for (int n = 0; n < N; n++)
            for (int j = 0; j < H; j++) {
                double s = 0;
                for (int k = 0; k < Din; k++)
                    s += x[n * Din + k] * w1[k * H + j];
                h[n * H + j] = s;
                hr[n * H + j] = s > 0 ? s : 0;
            }
        double loss = 0;
        for (int n = 0; n < N; n++)
            for (int o = 0; o < Dout; o++) {
                double s = 0;
                for (int j = 0; j < H; j++)
                    s += hr[n * H + j] * w2[j * Dout + o];
                const double d = s - y[n * Dout + o];
                loss += d * d;
                g[n * Dout + o] = 2 * d;
            }
        losses[t] = loss;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < H; j++) {
                double s = 0;
                for (int o = 0; o < Dout; o++)
                    s += g[n * Dout + o] * w2[j * Dout + o];
                gh[n * H + j] = h[n * H + j] < 0 ? 0 : s;
            }
        for (int j = 0; j < H; j++)
            for (int o = 0; o < Dout; o++) {
                double s = 0;
                for (int n = 0; n < N; n++)
                    s += hr[n * H + j] * g[n * Dout + o];
                w2[j * Dout + o] -= lr * s;
            }
        for (int k = 0; k < Din; k++)
            for (int j = 0; j < H; j++) {
                double s = 0;
                for (int n = 0; n < N; n++)
                    s += x[n * Din + k] * gh[n * H + j];
                w1[k * H + j] -= lr * s;
            }
    }
}

struct PersRun {
    std::vector<double> losses;
    std::vector<float> w1, w2;
};

static PersRun pers_run(int N, int Din, int H, int Dout, float lr, int steps, const std::vector<float> &x,
                        const std::vector<float> &y, const std::vector<float> &w1, const std::vector<float> &w2,
                        int hb, int ks, int one_barrier, int sync_mode, int launches)
{
    PersRun r;
    r.w1 = w1, r.w2 = w2;
    const int P = (H + hb - 1) / hb;
    std::vector<float> part(2 * P * N * Dout, NAN), gbuf(N * Dout, NAN);
    std::vector<double> lp(2 * P, NAN), losses(steps, NAN);
    unsigned long long bar = 0;
    PersistentParams p;
    p.x = x.data(), p.y = y.data(), p.w1 = r.w1.data(), p.w2 = r.w2.data();
    p.part = part.data(), p.gbuf = gbuf.data(), p.lp = lp.data(), p.bar = &bar;
    p.n = N, p.din = Din, p.h = H, p.dout = Dout, p.ks = ks, p.dinp = fx_p_dinp(Din);
    p.one_barrier = one_barrier, p.sync_mode = sync_mode, p.lr = lr;
    const size_t smem = fx_p_layout(N, ks, hb, Dout, Din).total;
    int done = 0;
    for (int l = 0; l < launches; l++) { // the run split over several launches, like run() chunks
        const int n = l + 1 == launches ? steps - done : steps / launches;
        p.steps = n;
        p.losses = losses.data() + done;
        bar = 0;
        if (hb == 1)
            emu::launch(dim3(P), dim3(FX_P_THREADS), smem, true, [p] { persistent_kernel<1>(p); });
        else
            emu::launch(dim3(P), dim3(FX_P_THREADS), smem, true, [p] { persistent_kernel<2>(p); });
        done += n;
    }
    r.losses = losses;
    return r;
}

static double rel_frob(const std::vector<float> &got, const std::vector<double> &want)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); i++)
        num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
    return sqrt(num / (den > 0 ? den : 1));
}

// Run three times: lock-step twice (the same bits), then under emu::coop_greedy (a block runs a
// phase ahead while the others have not yet read the previous phase's partials, and the last one
// arrives after everyone else waits), which must give the same bits again.
static void pers_case(int N, int Din, int H, int Dout, float lr, int steps, int hb, int ks, int one_barrier,
                      int sync_mode, int launches)
{
    std::vector<float> x(N * Din), y(N * Dout), w1(Din * H), w2(H * Dout);
    for (auto &v : x) v = randn();
    for (auto &v : y) v = randn();
    for (auto &v : w1) v = randn();
    for (auto &v : w2) v = randn();
    std::vector<double> rw1(w1.begin(), w1.end()), rw2(w2.begin(), w2.end()), rl(steps);
    ref_loop(N, Din, H, Dout, lr, steps, x, y, rw1, rw2, rl);
    PersRun r = pers_run(N, Din, H, Dout, lr, steps, x, y, w1, w2, hb, ks, one_barrier, sync_mode, launches);
    char what[160];
    snprintf(what, sizeof what, "persistent %dx%dx%dx%d hb %d ks %d %s-barrier %s launches %d order %d", N, Din, H,
             Dout, hb, ks, one_barrier ? "one" : "two", sync_mode ? "flags" : "coop", launches, emu::order_mode);
    for (int t = 0; t < steps; t++)
        EXPECT(fabs(r.losses[t] - rl[t]) <= 1e-4 * fabs(rl[t]) + 1e-30, "%s: loss[%d] = %.9g, want %.9g", what, t,
               r.losses[t], rl[t]);
    const double e1 = rel_frob(r.w1, rw1), e2 = rel_frob(r.w2, rw2);
    EXPECT(e1 <= 1e-4 && e2 <= 1e-4, "%s: weights rel err %.3g %.3g", what, e1, e2);
    // same inputs, other configuration of the same math: bitwise-identical losses on a rerun
    PersRun r2 = pers_run(N, Din, H, Dout, lr, steps, x, y, w1, w2, hb, ks, one_barrier, sync_mode, launches);
    EXPECT(memcmp(r.losses.data(), r2.losses.data(), steps * sizeof(double)) == 0, "%s: not reproducible", what);
    emu::coop_greedy = true;
    PersRun r3 = pers_run(N, Din, H, Dout, lr, steps, x, y, w1, w2, hb, ks, one_barrier, sync_mode, launches);
    emu::coop_greedy = false;
    for (int t = 0; t < steps; t++)
        EXPECT(!memcmp(&r.losses[t], &r3.losses[t], sizeof(double)),
               "%s: greedy blocks: loss[%d] = %.9g, lock-step %.9g (want %.9g)", what, t, r3.losses[t], r.losses[t],
               rl[t]);
    EXPECT(r.w1 == r3.w1 && r.w2 == r3.w2, "%s: greedy blocks: other weights (rel err %.3g %.3g)", what,
           rel_frob(r3.w1, rw1), rel_frob(r3.w2, rw2));
    passes++;
}

// The persistent kernel's grid barrier alone (fx_p_grid_sync, both modes): P blocks, rounds of
// "thread 0 writes its round and block id into a slot (double-buffered by round parity), barrier,
// every block checks all P slots". Block `late` spins 1000 switches before writing in rounds 1
// and 3 (lock-step), or the blocks run greedily (cuda_emu.h). A barrier that lets anyone through
// before the last arrival shows a stale slot.
static void barrier_case(int sync_mode, int P, int late, bool greedy)
{
    const int R = 5, NT = 32;
    std::vector<int> slot(2 * P, -1), bad(P, 0);
    unsigned long long bar = 0;
    PersistentParams p = {};
    p.sync_mode = sync_mode;
    p.bar = &bar;
    emu::coop_greedy = greedy;
    emu::launch(dim3(P), dim3(NT), 0, true, [&] {
        unsigned long long passed = 0;
        const int b = blockIdx.x;
        for (int r = 0; r < R; r++) {
            if (threadIdx.x == 0) {
                if (b == late && r % 2 == 1)
                    for (int i = 0; i < 1000; i++)
                        emu::yield();
                slot[(r & 1) * P + b] = r * P + b;
            }
            fx_p_grid_sync(p, passed);
            for (int bb = threadIdx.x; bb < P; bb += NT)
                if (slot[(r & 1) * P + bb] != r * P + bb)
                    bad[b]++;
        }
    });
    emu::coop_greedy = false;
    char what[120];
    snprintf(what, sizeof what, "grid barrier %s P %d late %d %s order %d", sync_mode ? "flags" : "coop", P, late,
             greedy ? "greedy" : "lock-step", emu::order_mode);
    for (int b = 0; b < P; b++)
        EXPECT(!bad[b], "%s: block %d saw %d stale slots after the barrier", what, b, bad[b]);
    EXPECT(sync_mode == FX_PSYNC_COOP || bar == (unsigned long long)R * P, "%s: counter %llu", what, bar);
    passes++;
}

static void test_barrier()
{
    for (int mode : {FX_PSYNC_COOP, FX_PSYNC_FLAGS})
        for (int P : {2, 5}) {
            for (int late : {0, P / 2, P - 1})
                barrier_case(mode, P, late, false);
            barrier_case(mode, P, -1, true);
        }
}

static void pers_hand_step()
{
    // check_loop.c's hand-worked 2x3x2x1 step: losses 8 then 25, exact weights
    const std::vector<float> x = {1, 2, 0, 0, 1, -1}, y = {1, 1}, w1 = {1, -2, 0, 1, 2, 0}, w2 = {3, -1};
    const float w1_want[] = {-5, 0, -12, 3, 2, 2}, w2_want[] = {1, 1};
    for (int hb = 1; hb <= 2; hb++)
        for (int ob = 0; ob < 2; ob++) {
            PersRun r = pers_run(2, 3, 2, 1, 0.5f, 2, x, y, w1, w2, hb, 3, ob, 0, 1);
            EXPECT(r.losses[0] == 8 && r.losses[1] == 25, "persistent hand step hb %d: losses %g %g", hb, r.losses[0],
                   r.losses[1]);
            PersRun r1 = pers_run(2, 3, 2, 1, 0.5f, 1, x, y, w1, w2, hb, 3, ob, 0, 1);
            EXPECT(!memcmp(r1.w1.data(), w1_want, sizeof w1_want) && !memcmp(r1.w2.data(), w2_want, sizeof w2_want),
                   "persistent hand step hb %d: weights (w1[0][1] = %g)", hb, r1.w1[1]);
            passes++;
        }
}

static void test_persistent(bool quick)
{
    emu::stack_bytes = 32 * 1024;
    pers_hand_step();
    //        N   Din  H  Dout  lr    steps hb  ks  one sync launches
    pers_case(37, 203, 13, 7, 1e-5f, 12, 1, 203, 0, 0, 1);
    pers_case(37, 203, 13, 7, 1e-5f, 12, 1, 64, 1, 1, 2);  // x partly from global; one barrier; flags
    pers_case(37, 203, 13, 7, 1e-5f, 12, 2, 0, 0, 1, 1);   // x all from global; 2 units per block
    pers_case(64, 1000, 7, 10, 1e-6f, 6, 2, 512, 1, 0, 3); // tutorial widths, odd H, three launches
    if (!quick) {
        pers_case(64, 1000, 12, 10, 1e-6f, 8, 1, 992, 0, 1, 1);
        pers_case(1, 1, 1, 1, 1e-2f, 20, 1, 1, 0, 0, 1);
        pers_case(1, 1, 1, 1, 1e-2f, 20, 2, 0, 1, 1, 2);
        pers_case(5, 300, 9, 40, 1e-5f, 10, 2, 288, 0, 0, 1); // N·D_out over the block count
    }
}

int main(int argc, char **argv)
{
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--only loss|sgemm|exact|persistent|barrier|mid]\n", argv[0]);
            return 2;
        }
    }
    if (!only)
        print_plans();
    for (int order : {0, 1, 2}) {
        emu::order_mode = order;
        emu::stack_bytes = 64 * 1024;
        const int before = failures;
        if (section("loss"))
            test_loss();
        if (section("sgemm"))
            test_sgemm(quick || order != 0); // every shape once, the rest in all three orders
        if (section("exact"))
            test_sgemm_exact(quick && order != 0); // every config once (also in --quick)
        if (section("barrier"))
            test_barrier();
        if (section("mid"))
            test_mid(quick && order != 0);
        if (section("persistent"))
            test_persistent(quick && order != 0);
        printf("order %s: %s\n", order == 0 ? "forward" : order == 1 ? "reverse" : "random",
               failures == before ? "ok" : "FAILED");
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
