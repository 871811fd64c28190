/* rv_dset: exact set of byte strings in one flat, relocatable buffer (see
 * rv_dset.h for the layout and the growth protocol). */
#include "rv_dset.h"

#include <assert.h>
#include <string.h>

#define HDR 12u       /* count, nslots, used */
#define INIT_LEN 40u  /* header + 28 data bytes: two 9-byte values */
#define LEN_LONG 255u /* length byte that announces a u32 length */

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Bytes of the entry of an n-byte value. */
static uint64_t entry_size(uint32_t n)
{
    return 4 + (n < LEN_LONG ? 1 : 5) + (uint64_t)n;
}

/* Decodes the entry at data + off; returns the offset after it. */
static uint32_t entry_at(const uint8_t *data, uint32_t off, uint32_t *h, const uint8_t **v,
                         uint32_t *n)
{
    *h = get32(data + off);
    off += 4;
    if (data[off] < LEN_LONG) {
        *n = data[off];
        off += 1;
    } else {
        *n = get32(data + off + 1);
        off += 5;
    }
    *v = data + off;
    return off + *n;
}

static uint32_t hash32(uint64_t hash)
{
    return (uint32_t)hash ^ (uint32_t)(hash >> 32);
}

/* Home slot of a hash in a table of nslots (any size, not just powers of
 * two: the high bits of h scaled to [0, nslots)). */
static uint32_t home_slot(uint32_t h, uint32_t nslots)
{
    return (uint32_t)(((uint64_t)h * nslots) >> 32);
}

/* Smallest table for count values at load <= 3/4. */
static uint64_t min_slots(uint64_t count)
{
    return (count * 4 + 2) / 3;
}

/* Table size chosen by rv_dset_regrow for a set of `count` values and
 * `used` data bytes in len bytes, such that one more value can be added:
 * none while the set stays below RV_DSET_SMALL values, else the larger of
 * the minimum for count + 1 values and the size that balances the table
 * against the data area: with an average entry of `a` bytes, a value costs
 * a + 4 / (3/4) bytes, so len - HDR bytes take 4 (len - HDR) / (3 a + 16)
 * slots. rv_dset_grow_size depends on this function being the one regrow
 * uses. */
static uint64_t table_slots(uint32_t count, uint32_t used, uint64_t len)
{
    if (count + 1 < RV_DSET_SMALL)
        return 0;
    uint64_t a = ((uint64_t)used + count - 1) / count; /* count >= RV_DSET_SMALL - 1 > 0 */
    uint64_t balanced = (len - HDR) * 4 / (3 * a + 16);
    uint64_t need = min_slots((uint64_t)count + 1);
    return balanced > need ? balanced : need;
}

uint32_t rv_dset_init_size(void)
{
    return INIT_LEN;
}

void rv_dset_init(uint8_t *set, uint32_t len)
{
    assert(len >= INIT_LEN);
    memset(set, 0, len);
}

/* Probes the table for (h, v, n). Returns true if present; otherwise
 * *slot is the empty slot where it belongs. */
static bool table_find(const uint8_t *table, uint32_t nslots, const uint8_t *data, uint32_t h,
                       const void *v, uint32_t n, uint32_t *slot)
{
    uint32_t s = home_slot(h, nslots);
    for (;;) {
        uint32_t ref = get32(table + 4 * (size_t)s);
        if (ref == 0) {
            *slot = s;
            return false;
        }
        uint32_t eh, en;
        const uint8_t *ev;
        entry_at(data, ref - 1, &eh, &ev, &en);
        if (eh == h && en == n && (n == 0 || memcmp(ev, v, n) == 0))
            return true;
        if (++s == nslots)
            s = 0;
    }
}

int rv_dset_add(uint8_t *set, uint32_t len, const void *v, uint32_t n, uint64_t hash)
{
    uint32_t count = get32(set), nslots = get32(set + 4), used = get32(set + 8);
    uint8_t *table = set + HDR;
    uint8_t *data = table + 4 * (size_t)nslots;
    uint32_t h = hash32(hash);
    uint32_t slot = 0;
    if (nslots == 0) {
        for (uint32_t off = 0; off < used;) {
            uint32_t eh, en;
            const uint8_t *ev;
            off = entry_at(data, off, &eh, &ev, &en);
            if (eh == h && en == n && (n == 0 || memcmp(ev, v, n) == 0))
                return 0;
        }
        if (count + 1 >= RV_DSET_SMALL)
            return -1; /* time for a table */
    } else {
        if (table_find(table, nslots, data, h, v, n, &slot))
            return 0;
        if (min_slots((uint64_t)count + 1) > nslots)
            return -1;
    }
    uint64_t es = entry_size(n);
    if ((uint64_t)used + es > (uint64_t)len - HDR - 4 * (uint64_t)nslots)
        return -1;
    uint8_t *e = data + used;
    put32(e, h);
    if (n < LEN_LONG) {
        e[4] = (uint8_t)n;
        e += 5;
    } else {
        e[4] = LEN_LONG;
        put32(e + 5, n);
        e += 9;
    }
    if (n > 0)
        memcpy(e, v, n);
    if (nslots > 0)
        put32(table + 4 * (size_t)slot, used + 1);
    put32(set, count + 1);
    put32(set + 8, (uint32_t)(used + es));
    return 1;
}

uint32_t rv_dset_grow_size(const uint8_t *set, uint32_t len, uint32_t n_needed)
{
    uint32_t count = get32(set), used = get32(set + 8);
    /* Data bytes needed after regrow, and the smallest len giving them
     * under either choice of table_slots (the minimum table or the
     * balanced one, whose data area is >= (len - HDR) * 3a / (3a + 16)).
     * Both bounds grow with len, so any larger len works too. */
    uint64_t data = (uint64_t)used + entry_size(n_needed);
    uint64_t need = HDR + data;
    if (count + 1 >= RV_DSET_SMALL) {
        uint64_t a = ((uint64_t)used + count - 1) / count;
        uint64_t with_min = HDR + 4 * min_slots((uint64_t)count + 1) + data;
        uint64_t with_bal = HDR + (data * (3 * a + 16) + 3 * a - 1) / (3 * a);
        need = with_min > with_bal ? with_min : with_bal;
    }
    if (need > RV_DSET_MAX_LEN)
        return 0;
    uint64_t nl = 2 * (uint64_t)len;
    if (nl > RV_DSET_MAX_LEN)
        nl = RV_DSET_MAX_LEN;
    if (nl < need)
        nl = need;
    assert(HDR + 4 * table_slots(count, used, nl) + data <= nl);
    return (uint32_t)nl;
}

void rv_dset_regrow(uint8_t *set, uint32_t old_len, uint32_t new_len)
{
    uint32_t count = get32(set), old_slots = get32(set + 4), used = get32(set + 8);
    assert(new_len >= old_len && new_len <= RV_DSET_MAX_LEN);
    uint32_t nslots = (uint32_t)table_slots(count, used, new_len);
    assert(HDR + 4 * (uint64_t)nslots + used <= new_len);
    uint8_t *table = set + HDR;
    uint8_t *old_data = table + 4 * (size_t)old_slots;
    uint8_t *data = table + 4 * (size_t)nslots;
    memmove(data, old_data, used);
    if (nslots < old_slots) /* keep the free space zeroed */
        memset(data + used, 0, 4 * (size_t)(old_slots - nslots));
    memset(table, 0, 4 * (size_t)nslots);
    for (uint32_t off = 0; off < used && nslots > 0;) {
        uint32_t h, n, s = 0;
        const uint8_t *v;
        uint32_t next = entry_at(data, off, &h, &v, &n);
        /* Values are distinct: the probe only finds the free slot. */
        bool found = table_find(table, nslots, data, h, v, n, &s);
        assert(!found);
        (void)found;
        put32(table + 4 * (size_t)s, off + 1);
        off = next;
    }
    put32(set + 4, nslots);
}

uint64_t rv_dset_count(const uint8_t *set, uint32_t len)
{
    return get32(set);
}

bool rv_dset_next(const uint8_t *set, uint32_t len, uint32_t *it, const uint8_t **v, uint32_t *n)
{
    uint32_t nslots = get32(set + 4), used = get32(set + 8);
    if (*it >= used)
        return false;
    uint32_t h;
    *it = entry_at(set + HDR + 4 * (size_t)nslots, *it, &h, v, n);
    return true;
}
