/* rv_hll: HyperLogLog sketch with linear counting for small cardinalities
 * (see rv_hll.h for the layout and the measured error). */
#include "rv_hll.h"

#include <math.h>

#define RV_HLL_MAX_RANK (64 - RV_HLL_P + 1)

void rv_hll_add(uint8_t *regs, uint64_t hash)
{
    uint32_t idx = (uint32_t)(hash >> (64 - RV_HLL_P));
    uint64_t rest = hash << RV_HLL_P; /* the other 64 - P bits, left-aligned */
    uint8_t rank = rest == 0 ? RV_HLL_MAX_RANK : (uint8_t)(__builtin_clzll(rest) + 1);
    if (rank > regs[idx])
        regs[idx] = rank;
}

void rv_hll_merge(uint8_t *dst, const uint8_t *src)
{
    for (uint32_t i = 0; i < RV_HLL_BYTES; i++)
        if (src[i] > dst[i])
            dst[i] = src[i];
}

uint64_t rv_hll_estimate(const uint8_t *regs)
{
    /* Histogram of register values, then sum(2^-reg) from it: exact
     * powers of two, and only 64 - P + 2 terms of floating point. */
    uint32_t hist[256] = {0};
    for (uint32_t i = 0; i < RV_HLL_BYTES; i++)
        hist[regs[i]]++;
    uint32_t zeros = hist[0];
    if (zeros == RV_HLL_BYTES)
        return 0;
    double sum = 0;
    for (int r = 255; r >= 0; r--)
        if (hist[r])
            sum += ldexp((double)hist[r], -r);
    double m = (double)RV_HLL_BYTES;
    /* Linear counting while its own estimate is at most 3 m (rv_hll.h
     * explains the deviation from the textbook "raw <= 2.5 m" switch). */
    if (zeros > 0) {
        double lc = m * log(m / (double)zeros);
        if (lc <= 3.0 * m)
            return (uint64_t)(lc + 0.5);
    }
    double alpha = 0.7213 / (1.0 + 1.079 / m);
    return (uint64_t)(alpha * m * m / sum + 0.5);
}
