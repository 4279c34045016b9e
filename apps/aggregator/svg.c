/*
 * svg.c: a hand-written SVG line chart (no plotting tool needed).
 *
 * Axes from zero, "nice" tick steps (1, 2 or 5 times a power of ten), one
 * polyline per series, a legend. Self-contained: no fonts or scripts to
 * fetch, so the file renders the same on GitHub and in a browser.
 */
#include "demo.h"

#include <math.h>
#include <stdio.h>

#define W  900.0
#define H  440.0
#define ML 80.0
#define MR 30.0
#define MT 50.0
#define MB 60.0

static double nice_step(double range) {
  if (range <= 0) return 1;
  double raw = range / 5, p = pow(10, floor(log10(raw)));
  double m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static void text_escaped(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<')
      fputs("&lt;", f);
    else if (*s == '>')
      fputs("&gt;", f);
    else if (*s == '&')
      fputs("&amp;", f);
    else
      fputc(*s, f);
  }
}

int agg_svg_chart(const char *path, const char *title, const char *xlabel,
                  const char *ylabel, const agg_series *s, size_t ns) {
  double xmax = 0, ymax = 0;
  for (size_t i = 0; i < ns; i++)
    for (size_t k = 0; k < s[i].n; k++) {
      if (s[i].x[k] > xmax) xmax = s[i].x[k];
      if (s[i].y[k] > ymax) ymax = s[i].y[k];
    }
  double xs = nice_step(xmax), ys = nice_step(ymax < 10 ? 10 : ymax);
  xmax = ceil(xmax / xs) * xs;
  ymax = ceil((ymax < 10 ? 10 : ymax) / ys) * ys;
  if (xmax <= 0) xmax = 1;
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  double pw = W - ML - MR, ph = H - MT - MB;
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
          "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
          "font-family=\"sans-serif\" font-size=\"13\">\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
          W, H, W, H);
  fprintf(f,
          "<text x=\"%.0f\" y=\"28\" text-anchor=\"middle\" "
          "font-size=\"16\" font-weight=\"bold\">",
          W / 2);
  text_escaped(f, title);
  fputs("</text>\n", f);
  for (double y = 0; y <= ymax + ys / 2; y += ys) {
    double py = MT + ph - y / ymax * ph;
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"#ddd\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
            "text-anchor=\"end\">%g</text>\n",
            ML, py, ML + pw, py, ML - 8, py + 4, y);
  }
  for (double x = 0; x <= xmax + xs / 2; x += xs) {
    double px = ML + x / xmax * pw;
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"#999\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
            "text-anchor=\"middle\">%g</text>\n",
            px, MT + ph, px, MT + ph + 5, px, MT + ph + 20, x);
  }
  fprintf(f,
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
          "stroke=\"black\"/>\n<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
          "y2=\"%.1f\" stroke=\"black\"/>\n",
          ML, MT, ML, MT + ph, ML, MT + ph, ML + pw, MT + ph);
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", ML + pw / 2,
          H - 15);
  text_escaped(f, xlabel);
  fprintf(f,
          "</text>\n<text transform=\"translate(20,%.1f) rotate(-90)\" "
          "text-anchor=\"middle\">",
          MT + ph / 2);
  text_escaped(f, ylabel);
  fputs("</text>\n", f);
  for (size_t i = 0; i < ns; i++) {
    fprintf(f,
            "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
            "points=\"",
            s[i].color);
    for (size_t k = 0; k < s[i].n; k++)
      fprintf(f, "%.1f,%.1f ", ML + s[i].x[k] / xmax * pw,
              MT + ph - s[i].y[k] / ymax * ph);
    fputs("\"/>\n", f);
    double ly = MT + 18 + 20 * (double)i;
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"%s\" stroke-width=\"3\"/>\n<text x=\"%.1f\" "
            "y=\"%.1f\">",
            ML + 15, ly, ML + 45, ly, s[i].color, ML + 52, ly + 4);
    text_escaped(f, s[i].name);
    fputs("</text>\n", f);
  }
  fputs("</svg>\n", f);
  return fclose(f) == 0 ? 0 : -1;
}
