#!/bin/sh
# bench/chart.sh TABLE_FILE OUT.svg: a bar chart of the weir/BEAM ratios
# that bench/run.sh printed (its `ratio NAME=X` lines), one bar per
# workload on a log scale, with its goal (bench/README.md, "Goals") marked
# where it has one. Needs only awk.
set -eu
in=$1
out=$2
awk '
BEGIN {
  goal["fanin"]=8; goal["pingpong"]=4; goal["call"]=2; goal["spawn"]=20;
  goal["partitioned"]=8;
  inv["bytes_per_process"]=10; inv["bytes_per_event"]=3;
}
/^ratio [a-z_]+=[0-9.]+$/ {
  split($2, kv, "="); name=kv[1]; v=kv[2]+0;
  if (v <= 0) next;
  # memory rows are "lower is better": show BEAM/weir so longer is better
  if (name in inv) { v = 1 / v; label = name " (BEAM/weir)"; g = inv[name] }
  else { label = name; g = (name in goal) ? goal[name] : 0 }
  n++; L[n]=label; V[n]=v; G[n]=g;
}
END {
  W=760; rowh=22; top=40; left=230; H=top+n*rowh+40;
  maxlog=log(50)/log(10);   # axis to 50x
  printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H;
  printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n";
  printf "<text x=\"%d\" y=\"20\" font-size=\"14\">weir / BEAM, same machine, same run (log scale; | = goal)</text>\n", left;
  plotw=W-left-60;
  for (t=1; t<=50; t*= (t<10?10:5)) {
    x=left+plotw*(log(t)/log(10))/maxlog;
    printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ccc\"/>\n", x, top-5, x, top+n*rowh;
    printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%gx</text>\n", x, top+n*rowh+15, t;
  }
  for (i=1;i<=n;i++) {
    y=top+(i-1)*rowh;
    lv=log(V[i])/log(10); if (lv<0) lv=0;
    w=plotw*lv/maxlog; if (w>plotw) w=plotw;
    col = (G[i]>0 && V[i] < G[i]) ? "#d9534f" : "#4a7ebb";
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left-8, y+14, L[i];
    printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", left, y+3, w, rowh-6, col;
    printf "<text x=\"%.1f\" y=\"%d\">%.2f</text>\n", left+w+4, y+14, V[i];
    if (G[i]>0) {
      gx=left+plotw*(log(G[i])/log(10))/maxlog;
      printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\" stroke-width=\"2\"/>\n", gx, y+1, gx, y+rowh-1;
    }
  }
  printf "</svg>\n";
}' "$in" >"$out"
