// Colours come from the stylesheet (custom properties and the legend swatches), so the
// charts follow the light and dark themes.

export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// withAlpha turns "rgb(r, g, b)" into "rgba(r, g, b, a)".
export function withAlpha(color, a) {
  var m = /^rgba?\(([^)]+)\)$/.exec(color);
  if (!m) return color;
  var parts = m[1].split(",").slice(0, 3);
  return "rgba(" + parts.join(",") + "," + a + ")";
}

// lineColor is the colour of a series: its legend swatch's.
export function lineColor(line) {
  return line.swatch ? getComputedStyle(line.swatch).backgroundColor : cssVar("--chart-1");
}
