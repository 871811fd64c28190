/* Unit tests of rv_hash: key groups and their assignment to subtasks. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "rv_hash.h"

Test(rv_key_group, ranges_partition_all_groups_and_agree_with_the_subtask_formula)
{
    int maxps[] = {1, 7, 128, 1000};
    for (size_t m = 0; m < sizeof(maxps) / sizeof(maxps[0]); m++) {
        int maxp = maxps[m];
        for (int p = 1; p <= maxp && p <= 64; p++) {
            int next = 0;
            for (int s = 0; s < p; s++) {
                int first, end;
                rv_key_group_range(s, maxp, p, &first, &end);
                cr_assert_eq(first, next, "maxp %d p %d subtask %d starts at %d", maxp, p, s, first);
                for (int kg = first; kg < end; kg++)
                    cr_assert_eq(rv_key_group_subtask(kg, maxp, p), s);
                next = end;
            }
            cr_assert_eq(next, maxp);
        }
    }
}

Test(rv_hash, equal_keys_hash_equally_and_types_are_distinguished)
{
    uint8_t *scratch = NULL;
    size_t scratch_cap = 0;
    rv_column cols[2];
    rv_col_init(&cols[0], RV_T_STRING, 4);
    rv_col_init(&cols[1], RV_T_INT64, 4);
    const char *strs[] = {"a", "b", "a", "a"};
    int64_t ints[] = {1, 1, 1, 2};
    for (uint32_t r = 0; r < 4; r++) {
        rv_col_set_str(&cols[0], r, strs[r], strlen(strs[r]));
        rv_col_set_i64(&cols[1], r, ints[r]);
    }
    uint64_t h[4];
    rv_hash_rows(cols, 2, 4, h, &scratch, &scratch_cap);
    cr_assert_eq(h[0], h[2]);
    cr_assert_neq(h[0], h[1]);
    cr_assert_neq(h[0], h[3]);
    /* ("ab", "c") and ("a", "bc") must differ: lengths are encoded. */
    rv_column s2[2];
    rv_col_init(&s2[0], RV_T_STRING, 2);
    rv_col_init(&s2[1], RV_T_STRING, 2);
    rv_col_set_str(&s2[0], 0, "ab", 2);
    rv_col_set_str(&s2[1], 0, "c", 1);
    rv_col_set_str(&s2[0], 1, "a", 1);
    rv_col_set_str(&s2[1], 1, "bc", 2);
    uint64_t h2[2];
    rv_hash_rows(s2, 2, 2, h2, &scratch, &scratch_cap);
    cr_assert_neq(h2[0], h2[1]);
    /* The int64 fast path agrees with the general encoding. */
    rv_column one;
    rv_col_init(&one, RV_T_INT64, 1);
    rv_col_set_i64(&one, 0, 42);
    uint64_t fast;
    rv_hash_rows(&one, 1, 1, &fast, &scratch, &scratch_cap);
    rv_col_enable_nulls(&one); /* forces the general path */
    uint64_t general;
    rv_hash_rows(&one, 1, 1, &general, &scratch, &scratch_cap);
    cr_assert_eq(fast, general);
    for (int i = 0; i < 2; i++) {
        rv_col_fini(&cols[i]);
        rv_col_fini(&s2[i]);
    }
    rv_col_fini(&one);
    free(scratch);
}

Test(rv_hash, null_differs_from_zero_and_negative_zero_equals_zero)
{
    uint8_t *scratch = NULL;
    size_t scratch_cap = 0;
    rv_column c;
    rv_col_init(&c, RV_T_FLOAT64, 3);
    rv_col_set_f64(&c, 0, 0.0);
    rv_col_set_f64(&c, 1, -0.0);
    rv_col_set_null(&c, 2);
    uint64_t h[3];
    rv_hash_rows(&c, 1, 3, h, &scratch, &scratch_cap);
    cr_assert_eq(h[0], h[1]);
    cr_assert_neq(h[0], h[2]);
    rv_col_fini(&c);
    free(scratch);
}
