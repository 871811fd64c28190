/* rv_hll: HyperLogLog sketch for the aggregate approx_count_distinct(x).
 *
 * The sketch is a flat array of RV_HLL_BYTES one-byte registers (no
 * pointers, no header), so it can be stored as a state value as is; a
 * zeroed buffer is the empty sketch. A value is added by its 64-bit hash
 * (which must be a good hash, e.g. XXH3 / rv_hash_bytes of the value's
 * canonical encoding): the top RV_HLL_P bits pick the register, the
 * register keeps the maximum over its hashes of 1 + the number of leading
 * zeros of the remaining 64 - RV_HLL_P bits (at most 64 - RV_HLL_P + 1).
 *
 * The estimate is the standard one (Flajolet et al. 2007): alpha_m * m^2 /
 * sum(2^-reg), with linear counting m * ln(m / zero_registers) for small
 * cardinalities. One deviation: linear counting is chosen when ITS OWN
 * estimate is at most 3 m (as HLL++ does), not when the raw estimate is at
 * most 2.5 m. The raw estimate is biased up around 2.5 m, so the textbook
 * switch hands over too early: measured mean error +1.6% at n = 10^4 and
 * +1.8% at n = 11000 (rms 3.0% / 2.2%), against +0.1% / +0.2% (rms 1.8% /
 * 2.0%) with this switch. No large-range correction: with 64-bit hashes it
 * is not needed. (Ertl's bias-free "improved estimator", arXiv 1702.01284,
 * would flatten the remaining bump near 3 m to ~1.4% rms if ever needed.)
 *
 * Error, measured with m = 4096 registers over 1000 independent hash seeds
 * per cardinality (XXH3 of distinct 8-byte integers), estimate - n:
 *   n = 1              always exact
 *   n = 10             at most 1 off (a register collision, ~1% of seeds)
 *   n = 100            rms 1.1%, at most 4 off
 *   n = 1000           rms 1.1%, worst 3.9%
 *   n = 5000           rms 1.4%, worst 5.2%
 *   n = 10^4 .. 13000  rms 1.6..2.0%, worst 8.1% (mean |bias| <= 0.75%)
 *   n = 2*10^4         rms 1.4%, worst 4.3%
 *   n = 10^5 .. 10^6   rms 1.6%, worst 6.9%  (theory: 1.04 / sqrt(m) = 1.6%)
 * Adding a value that is already present never changes the sketch, and
 * merging is exact: merging the sketches of A and B gives the same bytes
 * as the sketch of A u B. */
#ifndef RV_HLL_H
#define RV_HLL_H

#include <stdint.h>

#define RV_HLL_P 12 /* 4096 registers: standard error 1.04/sqrt(4096) ~ 1.6% */
#define RV_HLL_BYTES (1u << RV_HLL_P)

/* Adds a value by its 64-bit hash. */
void rv_hll_add(uint8_t *regs, uint64_t hash);
/* dst = dst u src (register-wise max). */
void rv_hll_merge(uint8_t *dst, const uint8_t *src);
/* Estimated number of distinct values; 0 for the empty (all-zero) sketch. */
uint64_t rv_hll_estimate(const uint8_t *regs);

#endif
