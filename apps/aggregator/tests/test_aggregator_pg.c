/*
 * test_aggregator_pg.c: the service against a real PostgreSQL server that
 * the test starts itself: initdb + pg_ctl in a temporary directory, on a
 * free port, listening on loopback and a socket in that directory. As root
 * (PostgreSQL refuses to run as root) the directory is given to the
 * postgres user and the server tools run via `runuser -u postgres --`.
 * Exits 77 (ctest SKIP) only when the PostgreSQL server binaries are not
 * installed; any other failure is a failure.
 */
#include "agg_testlib.h"
#include "store.h"

#include <glob.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

static char bindir[512];
static char dir[512];
static int as_postgres;

static int find_bindir(void) {
  const char *env = getenv("PG_BINDIR");
  if (env) {
    snprintf(bindir, sizeof bindir, "%s", env);
  } else {
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0) return -1;
    snprintf(bindir, sizeof bindir, "%s", g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    *strrchr(bindir, '/') = '\0';
  }
  char p[600];
  snprintf(p, sizeof p, "%s/pg_ctl", bindir);
  return access(p, X_OK);
}

static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof sa;
  CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  CHECK(getsockname(fd, (struct sockaddr *)&sa, &l) == 0);
  close(fd);
  return ntohs(sa.sin_port);
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
  char cmd[2048], full[2300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  snprintf(full, sizeof full, "%s%s",
           as_postgres ? "runuser -u postgres -- " : "", cmd);
  agg_test_log("$ %s", full);
  return system(full);
}

static int pg_started;

static void stop_pg(void) {
  if (pg_started)
    run("%s/pg_ctl -D %s/data -m immediate -w stop >/dev/null", bindir, dir);
  pg_started = 0;
}

int main(void) {
  if (find_bindir() != 0) {
    printf("SKIP: PostgreSQL server binaries not found (install postgresql, "
           "or set PG_BINDIR)\n");
    return 77;
  }
  as_postgres = geteuid() == 0;
  agg_test_tmpdir(dir, sizeof dir);
  if (as_postgres) {
    struct passwd *pw = getpwnam("postgres");
    CHECK_MSG(pw, "running as root but there is no postgres user");
    CHECK(chown(dir, pw->pw_uid, pw->pw_gid) == 0);
  }
  uint16_t pgport = free_port();
  CHECK_MSG(run("%s/initdb -D %s/data -U postgres -A trust --no-sync -E UTF8 "
                ">%s/initdb.log 2>&1",
                bindir, dir, dir) == 0,
            "initdb failed: see %s/initdb.log", dir);
  CHECK_MSG(run("%s/pg_ctl -D %s/data -l %s/pg.log -w -t 60 -o \"-p %u -k %s "
                "-c listen_addresses=127.0.0.1 -c fsync=off\" start "
                ">/dev/null",
                bindir, dir, dir, pgport, dir) == 0,
            "pg_ctl start failed: see %s/pg.log", dir);
  pg_started = 1;
  agg_test_on_fail = stop_pg;
  char db[256];
  snprintf(db, sizeof db, "postgresql://postgres@127.0.0.1:%u/postgres",
           pgport);

  agg_serve_opts o = agg_test_opts(db);
  o.partitions = 4;
  o.batch = 64;
  agg_service *svc = agg_test_start(&o);
  uint16_t port = agg_service_port(svc);
  const char *ev = "{\"user_id\":5,\"seq\":1,\"event\":\"click\","
                   "\"data\":{\"quote\":\"it's \\\"fine\\\"\"}}";
  CHECK(agg_test_http(port, "POST", "/track", ev, strlen(ev), NULL, NULL) ==
        202);
  /* Again: idempotent, stored once. */
  CHECK(agg_test_http(port, "POST", "/track", ev, strlen(ev), NULL, NULL) ==
        202);
  CHECK(agg_test_http(port, "POST", "/track", "{bad", 4, NULL, NULL) == 400);
  agg_counters c;
  CHECK(agg_service_stop(svc, &c) == 0);
  CHECK_EQ(c.stored, 1);
  CHECK_EQ(c.duplicates, 1);
  agg_test_log("postgresql: single event, duplicate ignored: ok");

  /* Order under load, single and batch requests; fresh table first. */
  for (unsigned batch = 1; batch <= 100; batch += 99) {
    agg_store *st;
    char err[256];
    CHECK_MSG(agg_store_open(db, 0, &st, err, sizeof err) == 0, "%s", err);
    CHECK(agg_store_reset(st, err, sizeof err) == 0);
    agg_store_close(st);
    svc = agg_test_start(&o);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", agg_service_port(svc));
    agg_load_opts lo = {.url = url,
                        .rate = 0,
                        .secs = 1.0,
                        .users = 50,
                        .batch = batch,
                        .conns = 4};
    agg_accept_log log;
    CHECK(agg_accept_log_init(&log, lo.users) == 0);
    agg_load_result r;
    CHECK_MSG(agg_load_run(&lo, &log, &r, err, sizeof err) == 0, "%s", err);
    CHECK(r.accepted > 0 && r.errors == 0);
    CHECK(agg_service_stop(svc, &c) == 0);
    CHECK_EQ(c.stored, r.accepted);
    CHECK_EQ(c.db_errors, 0);
    uint64_t rows;
    char msg[256];
    CHECK_MSG(agg_accept_log_verify(&log, db, &rows, msg, sizeof msg) == 0,
              "%s", msg);
    agg_accept_log_free(&log);
    agg_test_log("postgresql (batch %u): %s", batch, msg);
  }
  agg_test_on_fail = NULL;
  run("%s/pg_ctl -D %s/data -m fast -w stop >/dev/null", bindir, dir);
  pg_started = 0;
  agg_test_rmdir(dir);
  return 0;
}
