/*
 * test_errors.c: weir_strerror and weir_err_name agree with WEIR_ERRNO_MAP
 * for every code, and stay non-NULL for codes they do not know.
 */
#include "testlib.h"

typedef struct err_row {
  int code;
  const char *name;
  const char *text;
} err_row;

static const err_row rows[] = {
#define ROW(name, code, text) {code, "WEIR_" #name, text},
    WEIR_ERRNO_MAP(ROW)
#undef ROW
};
#define NROWS (sizeof rows / sizeof rows[0])

static void test_known_codes(void) {
  CHECK_EQ_INT(NROWS, 15);
  for (size_t i = 0; i < NROWS; i++) {
    CHECK(rows[i].code < 0);
    CHECK_STR_EQ(weir_strerror(rows[i].code), rows[i].text);
    CHECK_STR_EQ(weir_err_name(rows[i].code), rows[i].name);
    for (size_t j = 0; j < i; j++) {
      CHECK(rows[i].code != rows[j].code);
      CHECK(strcmp(rows[i].name, rows[j].name) != 0);
    }
  }
  /* Spot checks against the enum itself, not only the map. */
  CHECK_STR_EQ(weir_err_name(WEIR_EFULL), "WEIR_EFULL");
  CHECK_STR_EQ(weir_strerror(WEIR_EFULL), "mailbox full");
  CHECK_STR_EQ(weir_err_name(WEIR_ENOPROC), "WEIR_ENOPROC");
  CHECK_STR_EQ(weir_strerror(WEIR_ETIMEDOUT), "timed out");
  CHECK_EQ_INT(WEIR_EINVAL, -1);
  CHECK_EQ_INT(WEIR_ENOTSUP, -15);
}

static void test_ok_and_unknown(void) {
  const char *s = weir_strerror(WEIR_OK);
  const char *n = weir_err_name(WEIR_OK);
  CHECK(s != NULL && *s != '\0');
  CHECK(n != NULL && *n != '\0');
  CHECK_STR_EQ(n, "WEIR_OK");

  static const int unknown[] = {-16, -100,  -2147483647 - 1,
                                2,   12345, 2147483647};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *us = weir_strerror(unknown[i]);
    const char *un = weir_err_name(unknown[i]);
    CHECK(us != NULL && *us != '\0');
    CHECK(un != NULL && *un != '\0');
    /* An unknown code must not masquerade as a known one. */
    for (size_t j = 0; j < NROWS; j++) {
      CHECK(strcmp(us, rows[j].text) != 0);
      CHECK(strcmp(un, rows[j].name) != 0);
    }
  }
  /* WEIR_STOP (1) is a callback return value, not an error: still never NULL.
   */
  CHECK(weir_strerror(WEIR_STOP) != NULL);
  CHECK(weir_err_name(WEIR_STOP) != NULL);
}

int main(void) {
  test_known_codes();
  test_ok_and_unknown();
  test_log("test_errors: ok");
  return 0;
}
