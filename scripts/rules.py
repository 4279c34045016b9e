#!/usr/bin/env python3
"""rules.py: rules of src/ that a grep can keep (docs/ARCHITECTURE.md).

  rules.py atomics SRCDIR      fail on an atomic operation with an implicit
                               memory order (atomic_load( and the rest
                               without _explicit; with clang at hand, also
                               an operator on an _Atomic object, x++ or
                               x = v, through -Watomic-implicit-seq-cst)
  rules.py locks SRCDIR DOC    fail on a lock site that bypasses weir__lock
                               and weir__unlock, on one mutex taken at two
                               ranks, or when DOC's lock table and
                               WEIR__LOCK_RANKS (base.h) disagree

Every atomic operation names its memory order and says why it is enough;
seq_cst is written out where a store-load (Dekker) order needs it. Every
mutex of the runtime is taken at its rank, so that Debug builds check the
lock order (src/lockorder.c).
"""
import glob
import os
import re
import shutil
import subprocess
import sys

IMPLICIT = re.compile(
    r"\batomic_(load|store|exchange|fetch_add|fetch_sub|fetch_or|fetch_xor"
    r"|fetch_and|compare_exchange_strong|compare_exchange_weak"
    r"|flag_test_and_set|flag_clear)\s*\(")

RAW_LOCK = re.compile(r"\bpthread_mutex_(lock|unlock|trylock|timedlock)\s*\(")

# Calls allowed to stay implicit or raw, by file stem (none now). A budget
# may only go down.
PENDING_ATOMICS = {}
PENDING_LOCKS = {}


def pending_key(path, pending):
    base = os.path.basename(path)
    for k in pending:
        if base.startswith(k):
            return k
    return None


def strip_comments(text):
    """C comments and string literals blanked, lines kept."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(\\.|[^"\\\n])*"', blank, text,
                  flags=re.S)


def sources(srcdir):
    return sorted(glob.glob(os.path.join(srcdir, "*.c")) +
                  glob.glob(os.path.join(srcdir, "*.h")))


def scan(srcdir, pattern, pending, skip=()):
    bad, counted = [], {}
    for path in sources(srcdir):
        if os.path.basename(path) in skip:
            continue
        text = strip_comments(open(path).read())
        for no, line in enumerate(text.splitlines(), 1):
            calls = len(pattern.findall(line))
            if not calls:
                continue
            k = pending_key(path, pending)
            if k in pending:
                counted[k] = counted.get(k, 0) + calls
            else:
                bad.append(f"{path}:{no}: {line.strip()}")
    for k, n in counted.items():
        if n > pending[k]:
            bad.append(f"{k}*.c: {n} such calls, more than the {pending[k]} "
                       f"it had when this check came (scripts/rules.py)")
    return bad


def clang_implicit(srcdir):
    """x++ or x = v on an _Atomic object is an implicit seq_cst too."""
    clang = shutil.which("clang")
    if not clang:
        print("rules: clang not found: operators on _Atomic objects not "
              "checked")
        return []
    inc = os.path.join(srcdir, "..", "include")
    bad = []
    for path in sorted(glob.glob(os.path.join(srcdir, "*.c"))):
        r = subprocess.run(
            [clang, "-std=c11", "-fsyntax-only", "-D_GNU_SOURCE",
             "-DWEIR_BUILDING", "-DWEIR_CHECKS=1", "-I", inc, "-I", srcdir,
             "-Wno-everything", "-Watomic-implicit-seq-cst", path],
            capture_output=True, text=True)
        for line in r.stderr.splitlines():
            if "-Watomic-implicit-seq-cst" in line:
                bad.append(line)
    return bad


def atomics(srcdir):
    bad = scan(srcdir, IMPLICIT, PENDING_ATOMICS)
    bad += clang_implicit(srcdir)
    for b in bad:
        print(f"rules: implicit memory order: {b}")
    if bad:
        sys.exit("rules: write the order (atomic_*_explicit) and why it is "
                 "enough; seq_cst only where a store-load order needs it")
    print("rules: every atomic operation in src/ names its memory order")


def ranks_in_code(srcdir):
    text = open(os.path.join(srcdir, "base.h")).read()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"X\((\w+),\s*(\d+),", text)}


def ranks_in_doc(doc):
    text = open(doc).read()
    sec = text[text.index("## Locks"):]
    sec = sec[:sec.index("\n## ", 1)]
    out = {}
    for line in sec.splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|\s*`(\w+)`", line)
        if m:
            out[m.group(2)] = int(m.group(1))
    return out


SITE = re.compile(r"\bweir__(un)?lock\(\s*([^,]+?)\s*,\s*WEIR__LK_(\w+)\s*\)")


def one_rank_per_mutex(srcdir):
    """A mutex is named by its field (dq_mu, table_mu...); a bare `mu` (a
    module's own state, a local pointer) by its file and expression. Every
    site of one mutex must give the same rank, or the checker, which takes
    the rank from the site, would be checking two orders."""
    ranks, bad = {}, []
    for path in sources(srcdir):
        text = strip_comments(open(path).read())
        for no, line in enumerate(text.splitlines(), 1):
            for m in SITE.finditer(line):
                expr, rank = m.group(2), m.group(3)
                field = re.findall(r"\w+", expr)[-1]
                key = field if field != "mu" else \
                    f"{os.path.basename(path)}:{expr}"
                first = ranks.setdefault(key, (rank, f"{path}:{no}"))
                if first[0] != rank:
                    bad.append(f"{path}:{no}: {expr} at WEIR__LK_{rank}, "
                               f"but at WEIR__LK_{first[0]} in {first[1]}")
    return bad, len(ranks)


def locks(srcdir, doc):
    bad = scan(srcdir, RAW_LOCK, PENDING_LOCKS, skip=("lockorder.c", "base.h"))
    for b in bad:
        print(f"rules: lock site without its rank (weir__lock): {b}")
    mixed, nmutex = one_rank_per_mutex(srcdir)
    for b in mixed:
        print(f"rules: one mutex, two ranks: {b}")
    bad += mixed
    code, table = ranks_in_code(srcdir), ranks_in_doc(doc)
    if not code:
        bad.append("no WEIR__LOCK_RANKS in base.h")
        print("rules: no WEIR__LOCK_RANKS in base.h")
    for name in sorted(set(code) | set(table)):
        if code.get(name) != table.get(name):
            bad.append(name)
            print(f"rules: lock rank {name}: base.h says {code.get(name)}, "
                  f"{doc} says {table.get(name)}")
    if bad:
        sys.exit(1)
    print(f"rules: {len(code)} lock ranks, the same in base.h and the doc; "
          f"every lock site in src/ takes its rank ({nmutex} mutexes, one "
          f"rank each)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "atomics":
        atomics(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "locks":
        locks(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
