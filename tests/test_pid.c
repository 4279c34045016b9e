/*
 * test_pid.c: weir_pid_format / weir_pid_parse. Formatting and parsing
 * round-trip for every slot and generation (extremes and random values), and
 * the parser rejects everything that is not exactly "<0.SLOT.GEN>" or
 * "0.SLOT.GEN" with 32-bit decimal fields.
 */
#include "testlib.h"

static void check_round_trip(uint32_t slot, uint32_t gen) {
  char buf[32], want[64];
  weir_pid p = test_pid_make(slot, gen);
  int n = snprintf(want, sizeof want, "<0.%u.%u>", slot, gen);
  memset(buf, 'x', sizeof buf);
  CHECK_EQ_INT(weir_pid_format(p, buf, sizeof buf), n);
  CHECK_STR_EQ(buf, want);

  weir_pid q = {0};
  CHECK_OK(weir_pid_parse(buf, &q));
  CHECK_EQ_U64(q.id, p.id);

  /* The bare form "0.SLOT.GEN" parses to the same pid. */
  buf[n - 1] = '\0';
  q.id = 0;
  CHECK_OK(weir_pid_parse(buf + 1, &q));
  CHECK_EQ_U64(q.id, p.id);
}

static void test_round_trip(void) {
  static const uint32_t edge[] = {
      0,    1,     2,       9,           10,          99,
      1000, 65535, 1048575, 2147483647u, 4294967294u, 4294967295u};
  size_t ne = sizeof edge / sizeof edge[0];
  for (size_t i = 0; i < ne; i++)
    for (size_t j = 0; j < ne; j++) {
      if (edge[i] == 0 && edge[j] == 0)
        continue; /* WEIR_PID_NONE: formatting it is not specified */
      check_round_trip(edge[i], edge[j]);
    }
  test_rng r;
  test_rng_init(&r, test_seed());
  for (int i = 0; i < 100000; i++) {
    uint64_t v = test_rng_next(&r);
    /* Mix small and full-width fields. */
    uint32_t slot = (uint32_t)v, gen = (uint32_t)(v >> 32);
    if (i % 2) slot %= 1048576u;
    if (i % 3) gen %= 1000u;
    if (slot == 0 && gen == 0) continue;
    check_round_trip(slot, gen);
  }
}

static void test_format_buffer(void) {
  char buf[32];
  /* A pid of the default table (slot < 2^20) with any generation fits in 24
     bytes, as weir.h promises. */
  weir_pid p = test_pid_make(1048575u, 4294967295u);
  CHECK_EQ_INT(weir_pid_format(p, buf, 24), 22);
  CHECK_STR_EQ(buf, "<0.1048575.4294967295>");

  /* Exactly enough room: length + NUL. */
  weir_pid q = test_pid_make(12, 3);
  CHECK_EQ_INT(weir_pid_format(q, buf, 9), 8);
  CHECK_STR_EQ(buf, "<0.12.3>");
  /* One byte short: EINVAL, never a silently truncated pid. */
  CHECK_RC(weir_pid_format(q, buf, 8), WEIR_EINVAL);
  CHECK_RC(weir_pid_format(q, buf, 1), WEIR_EINVAL);
  CHECK_RC(weir_pid_format(q, buf, 0), WEIR_EINVAL);
  CHECK_RC(weir_pid_format(q, NULL, 24), WEIR_EINVAL);
}

static void test_parse_malformed(void) {
  static const char *bad[] = {
      "",
      "<",
      "<>",
      "<0.1>",
      "0.1",
      "<1.2.3>",
      "1.2.3",
      "<0.1.2.3>",
      "<0..2>",
      "<0.1.>",
      "<.1.2>",
      "<0.1.2",
      "0.1.2>",
      "<0.1.2>x",
      "<0.1.2> ",
      " <0.1.2>",
      "<0. 1.2>",
      "<0.1 .2>",
      "<0.-1.2>",
      "<0.+1.2>",
      "<0.1.-2>",
      "<0.0x1.2>",
      "<0.a.2>",
      "<0.1.b>",
      "<0.4294967296.1>", /* slot overflows 32 bits */
      "<0.1.4294967296>", /* generation overflows 32 bits */
      "<0.18446744073709551617.1>",
      "<0.1.99999999999999999999999>",
      "<0,1,2>",
      "<0.1.2>>",
      "<<0.1.2>",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    weir_pid p = test_pid_make(77, 77);
    int rc = weir_pid_parse(bad[i], &p);
    CHECK_MSG(rc == WEIR_EINVAL, "weir_pid_parse(\"%s\") returned %s (%d)",
              bad[i], weir_err_name(rc), rc);
  }
  weir_pid p;
  CHECK_RC(weir_pid_parse(NULL, &p), WEIR_EINVAL);
  CHECK_RC(weir_pid_parse("<0.1.2>", NULL), WEIR_EINVAL);

  /* Embedded NUL ends the string: what follows it does not count. */
  const char embedded[] = "<0.5.6>\0junk";
  CHECK_OK(weir_pid_parse(embedded, &p));
  CHECK_EQ_U64(p.id, test_pid_make(5, 6).id);
}

/* Reference parser. Returns 2 for a canonical pid text, 1 for one that
   differs only by leading zeros (either verdict is acceptable), 0 for
   anything else. */
static int ref_field(const char **s, uint64_t *v, int *lead0) {
  const char *p = *s;
  uint64_t x = 0;
  if (*p < '0' || *p > '9') return 0;
  if (*p == '0' && p[1] >= '0' && p[1] <= '9') *lead0 = 1;
  while (*p >= '0' && *p <= '9') {
    x = x * 10 + (uint64_t)(*p - '0');
    if (x > 4294967295u) return 0;
    p++;
  }
  *s = p;
  *v = x;
  return 1;
}

static int ref_parse(const char *s, weir_pid *out) {
  int br = *s == '<', lead0 = 0;
  uint64_t node, slot, gen;
  if (br) s++;
  if (!ref_field(&s, &node, &lead0) || node != 0 || *s++ != '.') return 0;
  if (!ref_field(&s, &slot, &lead0) || *s++ != '.') return 0;
  if (!ref_field(&s, &gen, &lead0)) return 0;
  if (br && *s++ != '>') return 0;
  if (*s != '\0') return 0;
  *out = test_pid_make((uint32_t)slot, (uint32_t)gen);
  return lead0 ? 1 : 2;
}

static void test_parse_random_garbage(void) {
  /* Random strings over the pid alphabet, checked against the reference
     parser. Never crashes, never reads past the NUL (ASan). */
  static const char alpha[] = "<>.0123456789 -+x";
  test_rng r;
  test_rng_init(&r, test_seed() ^ 0xabcdefu);
  for (int i = 0; i < 300000; i++) {
    char s[40];
    uint32_t n = test_rng_below(&r, 16);
    uint32_t k = 0;
    if (i % 2) { /* half start like a pid, to get past the first checks */
      s[k++] = '<';
      s[k++] = '0';
      s[k++] = '.';
    }
    for (; k < n + 3; k++)
      s[k] = alpha[test_rng_below(&r, (uint32_t)(sizeof alpha - 1))];
    s[k] = '\0';
    weir_pid want = {0}, got = {0};
    int ref = ref_parse(s, &want);
    int rc = weir_pid_parse(s, &got);
    if (ref == 2) {
      CHECK_MSG(rc == WEIR_OK && got.id == want.id,
                "parse(\"%s\") returned %d, id %llx", s, rc,
                (unsigned long long)got.id);
    } else if (ref == 1) {
      CHECK_MSG(rc == WEIR_EINVAL || (rc == WEIR_OK && got.id == want.id),
                "parse(\"%s\") returned %d, id %llx", s, rc,
                (unsigned long long)got.id);
    } else {
      CHECK_MSG(rc == WEIR_EINVAL, "parse(\"%s\") returned %s (%d)", s,
                weir_err_name(rc), rc);
    }
  }
}

int main(void) {
  test_seed();
  test_round_trip();
  test_format_buffer();
  test_parse_malformed();
  test_parse_random_garbage();
  test_log("test_pid: ok");
  return 0;
}
