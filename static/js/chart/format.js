// Numbers and times as the legend, the hover line and the footnotes write them.

export var KIND_TEXT = { nan: "NaN", inf: "+Inf", "-inf": "\u2212Inf" };

// trimZeros turns "2.3100" into "2.31" and "5.00e-4" into "5e-4".
export function trimZeros(s) {
  return s.replace(/(\.\d*?)0+(e|$)/, "$1$2").replace(/\.(e|$)/, "$1");
}

export function expo(v, digits) {
  return trimZeros(v.toExponential(digits)).replace("e-", "e\u2212").replace("e+", "e");
}

export function count(n) {
  return Math.round(n).toLocaleString("en");
}

// compact writes 1200 as "1.2k" and 3400000 as "3.4M".
export function compact(v) {
  var a = Math.abs(v);
  if (a >= 1e9) return trimZeros((v / 1e9).toFixed(a >= 1e10 ? 0 : 1)) + "B";
  if (a >= 1e6) return trimZeros((v / 1e6).toFixed(a >= 1e7 ? 0 : 1)) + "M";
  if (a >= 1e3) return trimZeros((v / 1e3).toFixed(a >= 1e4 ? 0 : 1)) + "k";
  return String(v);
}

export function bytes(v) {
  var a = Math.abs(v);
  if (a >= 1073741824) return trimZeros((v / 1073741824).toFixed(1)) + " GiB";
  if (a >= 1048576) return trimZeros((v / 1048576).toFixed(0)) + " MiB";
  return compact(v);
}

// unitOf says how a metric's values read: percent (utilisation), memory, or plain numbers.
export function unitOf(name) {
  if (/util/i.test(name)) return "pct";
  if (/mem/i.test(name)) return "mem";
  return "";
}

// A value in the legend: four significant digits, exponents for tiny values, thousands
// separators for large ones.
export function formatValue(v, unit) {
  if (v == null || !isFinite(v)) return "\u2013";
  var a = Math.abs(v);
  if (unit === "mem" && a >= 1048576) return bytes(v);
  var s;
  if (a === 0) s = "0";
  else if (a >= 10000) s = count(v);
  else if (a < 0.001) s = expo(v, 2);
  else s = trimZeros(v.toPrecision(4));
  return unit === "pct" ? s + "%" : s;
}

// duration writes seconds as "45s", "12m", "3m20s", "2h", "2h05m", "1d 4h".
export function duration(sec, precise) {
  var s = Math.round(Math.abs(sec));
  var sign = sec < 0 ? "\u2212" : "";
  var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  var pad = function (n) { return n < 10 ? "0" + n : String(n); };
  if (d) return sign + d + "d" + (h ? " " + h + "h" : "");
  if (h) return sign + h + "h" + (m || precise ? pad(m) + "m" : "");
  if (m) return sign + m + "m" + (r || precise ? pad(r) + "s" : "");
  return sign + r + "s";
}

// clock writes a time of day, "14:05:30".
export function clock(ms) {
  var d = new Date(ms);
  var pad = function (n) { return n < 10 ? "0" + n : String(n); };
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}
