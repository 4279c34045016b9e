#!/bin/sh
# bench/chart.sh TABLE_FILE OUT.svg: a bar chart of the ratios that
# bench/run.sh printed: its `ratio NAME=X` lines (weir / BEAM) and
# `ratio NAME_vs_go=X`, `ratio NAME_vs_caf=X` lines (weir / Go, weir / CAF).
# One group per workload, one bar per peer, on a log scale from 0.1x to 50x
# drawn from 1x: a bar to the right means weir is ahead, to the left that
# the peer is. The goals (weir / BEAM; bench/README.md, "Goals") are marked
# on the BEAM bars, red where unmet. Needs only awk.
set -eu
in=$1
out=$2
awk '
BEGIN {
  goal["fanin"]=8; goal["pingpong"]=4; goal["call"]=2; goal["spawn"]=20;
  goal["partitioned"]=8;
  inv["bytes_per_process"]=10; inv["bytes_per_event"]=3;
  color["BEAM"]="#4a7ebb"; color["Go"]="#2a9d8f"; color["CAF"]="#e9a23b";
}
/^ratio [a-z_]+=[0-9.]+$/ {
  split($2, kv, "="); name=kv[1]; v=kv[2]+0;
  if (v <= 0) next;
  peer="BEAM";
  if (name ~ /_vs_go$/) { peer="Go"; sub(/_vs_go$/, "", name) }
  else if (name ~ /_vs_caf$/) { peer="CAF"; sub(/_vs_caf$/, "", name) }
  g = 0;
  # memory rows are "lower is better": show peer/weir so longer is better
  if (name in inv) { v = 1 / v; if (peer == "BEAM") g = inv[name] }
  else if (peer == "BEAM" && (name in goal)) g = goal[name];
  if (!(name in group)) { group[name]=++ngroups; gname[ngroups]=name }
  gi = group[name];
  nb[gi]++; P[gi, nb[gi]]=peer; V[gi, nb[gi]]=v; G[gi, nb[gi]]=g;
  seen[peer]=1;
}
function xof(r) {   # log scale, 0.1x .. 50x
  if (r < lo) r = lo; if (r > hi) r = hi;
  return left + plotw * (log(r) - log(lo)) / (log(hi) - log(lo));
}
END {
  lo=0.1; hi=50;
  W=820; rowh=16; gap=8; top=56; left=250; plotw=W-left-70;
  nrows=0; for (i=1;i<=ngroups;i++) nrows+=nb[i];
  H=top+nrows*rowh+ngroups*gap+40;
  printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H;
  printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n";
  printf "<text x=\"%d\" y=\"20\" font-size=\"14\">weir / peer, same machine, same run (log scale; right of 1x: weir ahead; | = goal vs BEAM)</text>\n", 10;
  lx=left;
  n=split("BEAM Go CAF", order, " ");
  for (k=1;k<=n;k++) if (order[k] in seen) {
    printf "<rect x=\"%d\" y=\"30\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", lx, color[order[k]];
    printf "<text x=\"%d\" y=\"40\">weir / %s</text>\n", lx+16, order[k];
    lx+=110;
  }
  bottom=H-40;
  split("0.1 0.2 0.5 1 2 5 10 20 50", ticks, " ");
  for (t=1;t<=9;t++) {
    x=xof(ticks[t]+0);
    printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n", x, top-5, x, bottom, (ticks[t]=="1") ? "#555" : "#ccc";
    printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%sx</text>\n", x, bottom+15, ticks[t];
  }
  y=top; x1=xof(1);
  for (i=1;i<=ngroups;i++) {
    for (j=1;j<=nb[i];j++) {
      v=V[i,j]; g=G[i,j];
      xv=xof(v); bx=(xv<x1)?xv:x1; bw=(xv<x1)?x1-xv:xv-x1;
      col=(g>0 && v<g) ? "#d9534f" : color[P[i,j]];
      if (j==1) {
        label=gname[i]; if (gname[i] in inv) label=label " (peer/weir)";
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left-40, y+12, label;
      }
      printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#777\" font-size=\"10\">%s</text>\n", left-6, y+11, P[i,j];
      printf "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", bx, y+2, bw, rowh-4, col;
      printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\">%.2f</text>\n", (xv<x1)?x1+4:xv+4, y+11, v;
      if (g>0) {
        gx=xof(g);
        printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\" stroke-width=\"2\"/>\n", gx, y, gx, y+rowh;
      }
      y+=rowh;
    }
    y+=gap;
  }
  printf "</svg>\n";
}' "$in" >"$out"
