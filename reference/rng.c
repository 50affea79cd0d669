/* rng.c — xoshiro256** seeded by splitmix64, and Box–Muller normals (see reference.h). */
#include <math.h>
#include "reference.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void fx_rng_seed(fx_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

uint64_t fx_rng_next(fx_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double fx_rng_uniform(fx_rng *r) { return (double)(fx_rng_next(r) >> 11) * 0x1.0p-53; }

double fx_rng_normal(fx_rng *r)
{
    double u1 = 1.0 - fx_rng_uniform(r); /* (0, 1]: log() stays finite */
    double u2 = fx_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void fx_rng_fill_normal(fx_rng *r, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)fx_rng_normal(r);
}
